#!/bin/sh
# decnet worker installer — POSIX sh, safe to pipe: curl -sSf URL | sh -s -- [options]
#
# Installs the decnet binary as the worker's first release (a real
# releases/<id> with `current` pointing at it, for the agent and for the
# updater), the certificate bundles, and the systemd units. Running it again
# with the same inputs changes nothing.
#
#   --binary PATH | --url URL [--sha256 HEX]   the decnet executable
#   --bundle DIR            agent bundle (ca.crt worker.crt worker.key), from `swarm enroll`
#   --updater-bundle DIR    updater bundle (ca.crt updater.crt updater.key)
#   --install-dir DIR       default /opt/decnet
#   --root DIR              install under a staging root (images, tests); needs no root
#   --no-systemd            do not write or enable units
#   --no-start              write and enable units, do not start them
#
# Bundles go to ${DECNET_HOME:-$HOME/.decnet}/{agent,updater}.

# Everything runs inside main(), so a truncated download runs nothing.
main() {
  set -eu
  umask 022
  BINARY="" URL="" SHA256="" BUNDLE="" UPDATER_BUNDLE="" INSTALL_DIR=/opt/decnet ROOT="" SYSTEMD=1 START=1
  while [ $# -gt 0 ]; do
    case "$1" in
      --binary) BINARY=${2:?--binary needs a path}; shift 2 ;;
      --url) URL=${2:?--url needs a URL}; shift 2 ;;
      --sha256) SHA256=${2:?--sha256 needs a hex digest}; shift 2 ;;
      --bundle) BUNDLE=${2:?--bundle needs a dir}; shift 2 ;;
      --updater-bundle) UPDATER_BUNDLE=${2:?--updater-bundle needs a dir}; shift 2 ;;
      --install-dir) INSTALL_DIR=${2:?--install-dir needs a dir}; shift 2 ;;
      --root) ROOT=${2:?--root needs a dir}; shift 2 ;;
      --no-systemd) SYSTEMD=0; shift ;;
      --no-start) START=0; shift ;;
      -h|--help) sed -n '2,19p' "$0" 2>/dev/null | sed 's/^# \{0,1\}//'; exit 0 ;;
      *) usage "unknown option $1" ;;
    esac
  done

  [ -n "$BINARY" ] || [ -n "$URL" ] || usage "give --binary PATH or --url URL"
  [ -z "$BINARY" ] || [ -z "$URL" ] || usage "give --binary or --url, not both"
  [ -n "$BUNDLE" ] || usage "give --bundle DIR (from \`decnet swarm enroll --updater --out-dir DIR\`)"
  [ -n "$UPDATER_BUNDLE" ] || usage "give --updater-bundle DIR (DIR-updater from \`decnet swarm enroll --updater\`)"
  case "$INSTALL_DIR" in /*) ;; *) usage "--install-dir must be an absolute path" ;; esac
  if [ -z "$ROOT" ] && [ "$(id -u)" != 0 ]; then
    die "must run as root to install into $INSTALL_DIR and write systemd units (or use --root DIR to stage)"
  fi
  if [ -n "$ROOT" ]; then mkdir -p "$ROOT"; ROOT=$(cd "$ROOT" && pwd); fi

  check_bundle "$BUNDLE" worker
  check_bundle "$UPDATER_BUNDLE" updater

  TMP=$(mktemp -d "${TMPDIR:-/tmp}/decnet-install.XXXXXX")
  trap 'rm -rf "$TMP"' EXIT INT TERM

  if [ -n "$URL" ]; then
    say "downloading $URL"
    if command -v curl >/dev/null 2>&1; then curl -fsSL -o "$TMP/decnet" "$URL" || die "download of $URL failed"
    elif command -v wget >/dev/null 2>&1; then wget -q -O "$TMP/decnet" "$URL" || die "download of $URL failed"
    else die "neither curl nor wget is installed"; fi
    BINARY="$TMP/decnet"
  fi
  [ -f "$BINARY" ] || die "$BINARY is not a file"
  if [ -n "$SHA256" ]; then
    got=$(sha256sum "$BINARY" | cut -c1-64)
    [ "$got" = "$SHA256" ] || die "sha256 of $BINARY is $got, expected $SHA256"
  fi
  check_arch "$BINARY"
  cp "$BINARY" "$TMP/decnet.bin"
  chmod 0755 "$TMP/decnet.bin"
  "$TMP/decnet.bin" version --json >/dev/null 2>"$TMP/err" || die "$BINARY does not run here: $(tail -n 3 "$TMP/err")"

  # The first release, made the way every release is: `release pack`, then
  # unpacked and its id recomputed by hand (DESIGN §3) as a check.
  "$TMP/decnet.bin" release pack "$TMP/decnet.bin" --out "$TMP/release.tar.gz" >/dev/null 2>"$TMP/err" || die "packing the release failed: $(tail -n 3 "$TMP/err")"
  mkdir "$TMP/rel"
  tar -xzf "$TMP/release.tar.gz" -C "$TMP/rel"
  sha=$(sha256sum "$TMP/rel/decnet" | cut -c1-64)
  size=$(wc -c < "$TMP/rel/decnet" | tr -d ' ')
  ID=$(printf '%s 0755 %s decnet\n' "$sha" "$size" | sha256sum | cut -c1-64)
  grep -q "\"id\": \"$ID\"" "$TMP/rel/manifest.json" || die "release id mismatch: the manifest does not say $ID"

  DEST="$ROOT$INSTALL_DIR"
  install_release "$DEST" "agent"
  install_release "$DEST/updater" "updater"

  HOME_DIR="${DECNET_HOME:-$HOME/.decnet}"
  install_bundle "$BUNDLE" "$ROOT$HOME_DIR/agent" worker
  install_bundle "$UPDATER_BUNDLE" "$ROOT$HOME_DIR/updater" updater

  if [ "$SYSTEMD" = 1 ]; then
    units "$HOME_DIR"
    enable_and_start
  fi
  say "installed release ${ID%"${ID#????????????}"} in $DEST ($CHANGES change(s))"
}

CHANGES=0
say() { printf 'install.sh: %s\n' "$*"; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }
usage() { printf 'install.sh: %s (see --help)\n' "$*" >&2; exit 2; }

check_bundle() { # dir role
  [ -d "$1" ] || die "bundle dir $1 does not exist (copy it from the master's \`decnet swarm enroll --out-dir\`)"
  for f in ca.crt "$2.crt" "$2.key"; do
    [ -r "$1/$f" ] || die "bundle $1 lacks $f (is it the ${2} bundle?)"
  done
}

check_arch() { # binary
  magic=$(od -An -tx1 -N4 "$1" | tr -d ' \n')
  [ "$magic" = 7f454c46 ] || die "$1 is not a Linux executable"
  machine=$(od -An -tx1 -j18 -N2 "$1" | tr -d ' \n')
  case "$machine" in 3e00) bin_arch=x86_64 ;; b700) bin_arch=aarch64 ;; *) bin_arch="machine-$machine" ;; esac
  here=$(uname -m)
  [ "$bin_arch" = "$here" ] || die "$1 is built for $bin_arch, this machine is $here (use the linux-$( [ "$here" = aarch64 ] && echo arm64 || echo x64) build)"
}

install_release() { # slots-root what
  mkdir -p "$1/releases"
  if [ ! -d "$1/releases/$ID" ]; then
    rm -rf "$1/releases/.staging-install"
    mkdir -p "$1/releases/.staging-install"
    cp -p "$TMP/rel/decnet" "$TMP/rel/manifest.json" "$1/releases/.staging-install/"
    mv "$1/releases/.staging-install" "$1/releases/$ID"
    CHANGES=$((CHANGES + 1))
  fi
  if [ "$(readlink "$1/current" 2>/dev/null || true)" != "releases/$ID" ]; then
    old=$(readlink "$1/current" 2>/dev/null || true)
    if [ -n "$old" ]; then ln -sfn "$old" "$1/previous.new" && mv -T "$1/previous.new" "$1/previous"; fi
    ln -sfn "releases/$ID" "$1/current.new" && mv -T "$1/current.new" "$1/current"
    CHANGES=$((CHANGES + 1))
    say "$2: current -> releases/$ID"
  fi
}

install_bundle() { # from to role
  mkdir -p "$2"
  chmod 0700 "$2"
  for f in ca.crt "$3.crt" "$3.key"; do
    if ! cmp -s "$1/$f" "$2/$f"; then
      cp "$1/$f" "$2/$f.new" && mv "$2/$f.new" "$2/$f"
      CHANGES=$((CHANGES + 1))
    fi
  done
  chmod 0600 "$2/$3.key"
  chmod 0644 "$2/ca.crt" "$2/$3.crt"
}

write_if_changed() { # file content
  if [ "$(cat "$1" 2>/dev/null || true)" != "$2" ]; then
    printf '%s\n' "$2" > "$1.new" && mv "$1.new" "$1"
    CHANGES=$((CHANGES + 1))
  fi
}

units() { # decnet home (as seen on the worker)
  dir="$ROOT/etc/systemd/system"
  mkdir -p "$dir"
  # Both daemons: nothing that stops the updater re-executing itself or
  # calling systemctl; the install dir stays writable.
  hardening="NoNewPrivileges=yes
ProtectSystem=full
ProtectHome=read-only
ReadWritePaths=$INSTALL_DIR
PrivateTmp=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
LockPersonality=yes"
  write_if_changed "$dir/decnet-updater.service" "[Unit]
Description=decnet updater: installs pushed releases and supervises the agent
Documentation=https://github.com/decnet/decnet
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStart=$INSTALL_DIR/updater/current/decnet updater --install-dir $INSTALL_DIR --updater-dir $1/updater --agent-dir $1/agent --agent-supervisor systemd
WorkingDirectory=$INSTALL_DIR
Restart=always
RestartSec=2
$hardening

[Install]
WantedBy=multi-user.target"
  write_if_changed "$dir/decnet-agent.service" "[Unit]
Description=decnet agent: the worker's workload
After=network-online.target decnet-updater.service
Wants=network-online.target

[Service]
Type=simple
ExecStart=$INSTALL_DIR/current/decnet agent --install-dir $INSTALL_DIR --agent-dir $1/agent
WorkingDirectory=$INSTALL_DIR
Restart=always
RestartSec=2
$hardening

[Install]
WantedBy=multi-user.target"
}

enable_and_start() {
  command -v systemctl >/dev/null 2>&1 || { say "systemctl not found: units written, not enabled"; return 0; }
  if [ -n "$ROOT" ]; then
    # Offline: creates the wants/ symlinks inside the staging root.
    systemctl --root="$ROOT" enable decnet-updater.service decnet-agent.service >/dev/null 2>&1 || say "could not enable units under $ROOT"
    return 0
  fi
  systemctl daemon-reload
  systemctl enable decnet-updater.service decnet-agent.service >/dev/null 2>&1
  if [ "$START" = 1 ]; then systemctl restart decnet-updater.service decnet-agent.service; fi
}

main "$@"

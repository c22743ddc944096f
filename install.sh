#!/bin/sh
# decnet worker installer — POSIX sh, safe to pipe: curl -sSf URL | sh -s -- [options]
#
# Installs the decnet binary as the worker's first release (a real
# releases/<id> with `current` pointing at it and a history entry, for the
# agent and for the updater), the certificate bundles, .env.local settings and
# the systemd units. A worker that already has a release keeps it (a push may
# have replaced the first one); running it again changes only what differs and
# restarts only the daemons whose inputs changed. Options: usage() below,
# printed by --help (from the script itself, so it works when piped).

# Everything runs inside main(), so a truncated download runs nothing.
main() {
  set -eu
  umask 022
  BINARY="" URL="" SHA256="" INSECURE=0 BUNDLE="" UPDATER_BUNDLE="" INSTALL_DIR=/opt/decnet ROOT=""
  SYSTEMD=1 START=1 FORCE=0 HOST="" AGENT_PORT="" UPDATER_PORT=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --binary) BINARY=$(arg "$@"); shift 2 ;;
      --url) URL=$(arg "$@"); shift 2 ;;
      --sha256) SHA256=$(arg "$@"); shift 2 ;;
      --insecure) INSECURE=1; shift ;;
      --bundle) BUNDLE=$(arg "$@"); shift 2 ;;
      --updater-bundle) UPDATER_BUNDLE=$(arg "$@"); shift 2 ;;
      --install-dir) INSTALL_DIR=$(arg "$@"); shift 2 ;;
      --host) HOST=$(arg "$@"); shift 2 ;;
      --agent-port) AGENT_PORT=$(arg "$@"); shift 2 ;;
      --updater-port) UPDATER_PORT=$(arg "$@"); shift 2 ;;
      --force) FORCE=1; shift ;;
      --root) ROOT=$(arg "$@"); shift 2 ;;
      --no-systemd) SYSTEMD=0; shift ;;
      --no-start) START=0; shift ;;
      -h|--help) usage_text; exit 0 ;;
      *) usage "unknown option $1" ;;
    esac
  done

  [ -n "$BINARY" ] || [ -n "$URL" ] || usage "give --binary PATH or --url URL"
  [ -z "$BINARY" ] || [ -z "$URL" ] || usage "give --binary or --url, not both"
  [ -n "$BUNDLE" ] || usage "give --bundle DIR (from \`decnet swarm enroll --updater --out-dir DIR\`)"
  [ -n "$UPDATER_BUNDLE" ] || usage "give --updater-bundle DIR (DIR-updater from \`decnet swarm enroll --updater\`)"
  case "$INSTALL_DIR" in /*) ;; *) usage "--install-dir must be an absolute path" ;; esac
  case "$INSTALL_DIR" in *[!A-Za-z0-9/._-]*) usage "--install-dir may hold only letters, digits and / . _ -" ;; esac
  case "$SHA256" in "") ;; *[!0-9a-fA-F]*) usage "--sha256 must be 64 hex digits" ;; *) [ ${#SHA256} -eq 64 ] || usage "--sha256 must be 64 hex digits"; SHA256=$(printf '%s' "$SHA256" | tr 'A-F' 'a-f') ;; esac
  case "$HOST" in *[!A-Za-z0-9.:_-]*) usage "--host must be an address or host name" ;; esac
  check_port "$AGENT_PORT" --agent-port
  check_port "$UPDATER_PORT" --updater-port
  if [ -n "$URL" ]; then url_checks; fi
  if [ -z "$ROOT" ] && [ "$(id -u)" != 0 ]; then
    die "must run as root to install into $INSTALL_DIR and write systemd units (or use --root DIR to stage)"
  fi
  if [ -n "$ROOT" ]; then mkdir -p "$ROOT"; ROOT=$(cd "$ROOT" && pwd); fi

  check_bundle "$BUNDLE" worker
  check_bundle "$UPDATER_BUNDLE" updater

  DEST="$ROOT$INSTALL_DIR"
  # A failed install leaves nothing behind: the dirs made here go again.
  MADE="" d=$DEST
  while [ ! -e "$d" ]; do MADE=$d; d=$(dirname "$d"); done
  mkdir -p "$DEST"
  private_tmp

  if [ -n "$URL" ]; then download; fi
  [ -f "$BINARY" ] || die "$BINARY is not a file"
  if [ -n "$SHA256" ]; then
    got=$(sha256sum "$BINARY" | cut -c1-64)
    [ "$got" = "$SHA256" ] || die "sha256 of $BINARY is $got, expected $SHA256"
  fi
  check_arch "$BINARY"
  cp "$BINARY" "$TMP/decnet.bin"
  chmod 0755 "$TMP/decnet.bin"
  "$TMP/decnet.bin" version --json >/dev/null 2>"$TMP/err" || die "$BINARY does not run here: $(tail -n 3 "$TMP/err")"

  # The release id, computed by hand the way DESIGN §3 says anyone can.
  sha=$(sha256sum "$TMP/decnet.bin" | cut -c1-64)
  size=$(wc -c < "$TMP/decnet.bin" | tr -d ' ')
  ID=$(printf '%s 0755 %s decnet\n' "$sha" "$size" | sha256sum | cut -c1-64)
  # The release itself, made the way every release is (`release pack`) and
  # checked against that id; only when a slot will take it.
  if takes_release "$DEST" || takes_release "$DEST/updater"; then
    "$TMP/decnet.bin" release pack "$TMP/decnet.bin" --out "$TMP/release.tar.gz" >/dev/null 2>"$TMP/err" || die "packing the release failed: $(tail -n 3 "$TMP/err")"
    mkdir "$TMP/rel"
    tar --no-same-owner -xzf "$TMP/release.tar.gz" -C "$TMP/rel"
    [ "$(sha256sum "$TMP/rel/decnet" | cut -c1-64)" = "$sha" ] || die "the packed executable differs from $BINARY"
    grep -q "\"id\": \"$ID\"" "$TMP/rel/manifest.json" || die "release id mismatch: the manifest does not say $ID"
  fi

  install_release "$DEST" agent
  AGENT_ON=$ON
  install_release "$DEST/updater" updater

  HOME_DIR="${DECNET_HOME:-$HOME/.decnet}"
  install_bundle "$BUNDLE" "$ROOT$HOME_DIR/agent" worker agent
  install_bundle "$UPDATER_BUNDLE" "$ROOT$HOME_DIR/updater" updater updater
  env_local "$DEST/.env.local"

  if [ "$SYSTEMD" = 1 ]; then
    units "$HOME_DIR"
    enable_and_start
  fi
  DONE=1
  if [ "$AGENT_ON" = "$ID" ]; then
    say "installed release $(short "$ID") in $DEST ($CHANGES change(s))"
  else
    say "kept release $(short "$AGENT_ON") in $DEST, not this binary's $(short "$ID") (--force installs it) ($CHANGES change(s))"
  fi
}

usage_text() {
  cat <<'EOF'
Usage: install.sh (--binary PATH | --url URL [--sha256 HEX]) --bundle DIR --updater-bundle DIR [options]

  --binary PATH          the decnet executable
  --url URL              download it instead; {arch} in URL becomes linux-x64 or linux-arm64.
                         https only (redirects too). Without --sha256 the digest is fetched
                         from URL.sha256, from the same origin, and the installer says so
  --sha256 HEX           the executable's sha256 (checked for --binary too)
  --insecure             allow a plain http:// URL
  --bundle DIR           agent bundle (ca.crt worker.crt worker.key), from `swarm enroll`
  --updater-bundle DIR   updater bundle (ca.crt updater.crt updater.key)
  --install-dir DIR      default /opt/decnet
  --host ADDR            address both daemons listen on (default 0.0.0.0)
  --agent-port N         the agent's port (default 8765)
  --updater-port N       the updater's port (default 8766)
                         (these three go to DIR/.env.local, read by both daemons)
  --force                make this binary current even if a release is installed
  --root DIR             install under a staging root (images, tests); needs no root
  --no-systemd           do not write or enable units
  --no-start             write and enable units, do not start them
  -h, --help             this text

Bundles go to ${DECNET_HOME:-$HOME/.decnet}/{agent,updater}. A worker that
already has a release keeps it (pushes replace it); a second run changes only
what differs and restarts only the daemons whose inputs changed.
EOF
}

CHANGES=0
DONE=0
RESTART_AGENT=0
RESTART_UPDATER=0
UNITS_CHANGED=0
say() { printf 'install.sh: %s\n' "$*"; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }
usage() { printf 'install.sh: %s (see --help)\n' "$*" >&2; exit 2; }
arg() { [ $# -ge 2 ] && [ -n "$2" ] || usage "$1 needs a value"; printf '%s' "$2"; }
short() { printf '%s' "$1" | cut -c1-12; }

check_port() { # value flag
  [ -z "$1" ] && return 0
  case "$1" in *[!0-9]*) usage "$2 must be a port number" ;; esac
  [ "$1" -ge 1 ] && [ "$1" -le 65535 ] || usage "$2 must be between 1 and 65535"
}

# The URL's {arch}, its scheme, and where its digest comes from — all before
# anything is written.
url_checks() {
  case "$(uname -m)" in
    x86_64|amd64) target=linux-x64 ;;
    aarch64|arm64) target=linux-arm64 ;;
    *) target="" ;;
  esac
  case "$URL" in
    *"{arch}"*) [ -n "$target" ] || die "no decnet build for this machine ($(uname -m)): {arch} in --url has no value"
      URL=$(printf '%s' "$URL" | sed "s/{arch}/$target/g") ;;
  esac
  case "$URL" in
    https://*) ;;
    http://*) [ "$INSECURE" = 1 ] || usage "refusing plain http ($URL): anyone on the path can change the binary; use https, or --insecure with --sha256" ;;
    *) usage "--url must be an https:// URL" ;;
  esac
}

# A private temp dir inside the install dir: never under $TMPDIR (which the
# caller, or another user through `sudo -E`, may control), on the same file
# system as the releases, and executable (/tmp may be noexec). The dir it
# lives in must be ours and not writable by others, and the new dir must be
# a real directory, ours, mode 0700.
private_tmp() {
  me=$(id -u)
  [ -d "$DEST" ] && [ ! -L "$DEST" ] || die "$DEST is not a directory"
  set -- $(stat -c '%u %a' "$DEST")
  [ "$1" = "$me" ] || die "$DEST is owned by uid $1, not by uid $me: refusing to install into it"
  [ $((0$2 & 022)) = 0 ] || die "$DEST is writable by others (mode $2): chmod go-w $DEST"
  TMP=$(mktemp -d "$DEST/.install-tmp.XXXXXX") || die "could not make a temp dir in $DEST"
  trap cleanup EXIT
  trap 'exit 1' INT TERM HUP
  set -- $(stat -c '%u %a' "$TMP")
  [ -d "$TMP" ] && [ ! -L "$TMP" ] && [ "$1" = "$me" ] && [ "$2" = 700 ] || die "temp dir $TMP is not private (mode $2, uid $1)"
}

cleanup() {
  rm -rf "$TMP"
  [ "$DONE" = 0 ] && [ -n "$MADE" ] || return 0
  d=$DEST
  while rmdir "$d" 2>/dev/null && [ "$d" != "$MADE" ]; do d=$(dirname "$d"); done
}

fetch() { # url file
  if command -v curl >/dev/null 2>&1; then
    if [ "$INSECURE" = 1 ]; then curl -fsSL -o "$2" "$1"
    else curl -fsSL --proto =https --proto-redir =https -o "$2" "$1"; fi
  elif command -v wget >/dev/null 2>&1; then
    # wget cannot limit a redirect to https: follow none unless --insecure.
    if [ "$INSECURE" = 1 ]; then wget -q -O "$2" "$1"
    else wget -q --max-redirect=0 -O "$2" "$1"; fi
  else die "neither curl nor wget is installed"; fi
}

download() {
  if [ -z "$SHA256" ]; then
    say "no --sha256: checking the download against $URL.sha256, from the same origin"
    fetch "$URL.sha256" "$TMP/sha256" || die "--url needs --sha256 HEX: $URL.sha256 could not be fetched"
    SHA256=$(head -c 200 "$TMP/sha256" | head -n 1 | cut -d' ' -f1 | tr 'A-F' 'a-f')
    case "$SHA256" in *[!0-9a-f]*|"") die "$URL.sha256 does not start with a sha256 digest" ;; esac
    [ ${#SHA256} -eq 64 ] || die "$URL.sha256 does not start with a sha256 digest"
  fi
  say "downloading $URL"
  fetch "$URL" "$TMP/decnet" || die "download of $URL failed"
  BINARY="$TMP/decnet"
}

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

# Does this slot set take the new release? Not when it has a current one
# (its files present) — a push may have installed it — unless --force.
takes_release() { # slots-root
  cur=$(readlink "$1/current" 2>/dev/null || true)
  [ -n "$cur" ] && [ -f "$1/$cur/manifest.json" ] && [ -f "$1/$cur/decnet" ] || return 0
  [ "$cur" != "releases/$ID" ] && [ "$FORCE" = 1 ]
}

# Installs the release into one slot set when it takes it. Sets ON to the id
# current points at afterwards.
install_release() { # slots-root what
  cur=$(readlink "$1/current" 2>/dev/null || true)
  ON=${cur#releases/}
  if ! takes_release "$1"; then
    [ "$cur" = "releases/$ID" ] || say "$2: keeps current -> $cur ($(version_of "$1/$cur")); --force installs this binary instead"
    add_history "$1" "$ON"
    return 0
  fi
  mkdir -p "$1/releases"
  if [ ! -d "$1/releases/$ID" ]; then
    rm -rf "$1/releases/.staging-install"
    mkdir -p "$1/releases/.staging-install"
    cp -p "$TMP/rel/decnet" "$TMP/rel/manifest.json" "$1/releases/.staging-install/"
    mv "$1/releases/.staging-install" "$1/releases/$ID"
    CHANGES=$((CHANGES + 1))
  fi
  if [ -n "$cur" ] && [ -d "$1/$cur" ]; then ln -sfn "$cur" "$1/previous.new" && mv -T "$1/previous.new" "$1/previous"; fi
  ln -sfn "releases/$ID" "$1/current.new" && mv -T "$1/current.new" "$1/current"
  CHANGES=$((CHANGES + 1))
  restart_for "$2"
  ON=$ID
  add_history "$1" "$ID"
  say "$2: current -> releases/$ID"
}

version_of() { # release dir
  sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$1/manifest.json" | head -n 1
}

restart_for() { # agent | updater | both
  case "$1" in
    agent) RESTART_AGENT=1 ;;
    updater) RESTART_UPDATER=1 ;;
    both) RESTART_AGENT=1; RESTART_UPDATER=1 ;;
  esac
}

# history.json (the updater's record of releases; see daemons/updater/slots.ts)
# gets an entry for the installed release, marked good, so that it shows an
# install time and pruning treats it as the good release it is. Other
# entries are left as they are.
add_history() { # slots-root id
  f="$1/history.json"
  [ -f "$f" ] && grep -q "\"$2\"" "$f" && return 0
  entry=$(printf ' "%s": {\n  "installed_at": "%s",\n  "status": "good"\n }' "$2" "$(date -u +%Y-%m-%dT%H:%M:%S.000Z)")
  if [ ! -s "$f" ] || [ "$(tr -d ' \n' < "$f")" = "{}" ]; then
    printf '{\n%s\n}\n' "$entry" > "$f.new"
  elif [ "$(head -n 1 "$f")" = "{" ]; then
    { printf '{\n%s,\n' "$entry"; tail -n +2 "$f"; } > "$f.new"
  else
    say "warning: $f is not as the updater writes it; no history entry for $(short "$2")"
    return 0
  fi
  chmod 0600 "$f.new" && mv "$f.new" "$f"
  CHANGES=$((CHANGES + 1))
}

install_bundle() { # from to role daemon
  mkdir -p "$2"
  chmod 0700 "$2"
  for f in ca.crt "$3.crt" "$3.key"; do
    if ! cmp -s "$1/$f" "$2/$f"; then
      cp "$1/$f" "$2/$f.new" && mv "$2/$f.new" "$2/$f"
      CHANGES=$((CHANGES + 1))
      restart_for "$4"
    fi
  done
  # The fleet's trust document, when enrollment put one in the bundle: the
  # updater adopts it at start (a newer one already held stays).
  if [ -f "$1/trust.json" ] && ! cmp -s "$1/trust.json" "$2/trust.json"; then
    cp "$1/trust.json" "$2/trust.json.new" && mv "$2/trust.json.new" "$2/trust.json"
    chmod 0644 "$2/trust.json"
    CHANGES=$((CHANGES + 1))
    restart_for "$4"
  fi
  chmod 0600 "$2/$3.key"
  chmod 0644 "$2/ca.crt" "$2/$3.crt"
}

write_if_changed() { # file content → 0 if it changed
  [ "$(cat "$1" 2>/dev/null || true)" != "$2" ] || return 1
  printf '%s\n' "$2" > "$1.new" && mv "$1.new" "$1"
  CHANGES=$((CHANGES + 1))
}

# DECNET_HOST / DECNET_AGENT_PORT / DECNET_UPDATER_PORT in .env.local, read
# by both daemons (lib/env.ts's known keys). A key given replaces its line
# where it is (or is added at the end); every other line stays as it is.
env_local() { # file
  [ -n "$HOST$AGENT_PORT$UPDATER_PORT" ] || return 0
  content=$( { [ -f "$1" ] && cat "$1"; true; } | awk -v h="$HOST" -v a="$AGENT_PORT" -v u="$UPDATER_PORT" '
    BEGIN { v["DECNET_HOST"] = h; v["DECNET_AGENT_PORT"] = a; v["DECNET_UPDATER_PORT"] = u }
    {
      k = $0; sub(/^[ \t]*(export[ \t]+)?/, "", k); sub(/[ \t]*=.*$/, "", k)
      if ((k in v) && v[k] != "") { if (!(k in done)) print k "=" v[k]; done[k] = 1; next }
      print
    }
    END { split("DECNET_HOST DECNET_AGENT_PORT DECNET_UPDATER_PORT", ks, " ")
          for (i = 1; i <= 3; i++) if (v[ks[i]] != "" && !(ks[i] in done)) print ks[i] "=" v[ks[i]] }')
  if write_if_changed "$1" "$content"; then restart_for both; fi
}

units() { # decnet home (as seen on the worker)
  dir="$ROOT/etc/systemd/system"
  mkdir -p "$dir"
  # Both daemons run as root (they manage the install dir and, for the
  # updater, the agent's unit) in a read-only system with the install dir
  # writable. What the updater must keep: execve of its new release in place
  # (self-update: same pid, so no MemoryDenyWriteExecute — Bun's JIT needs
  # W+X memory — and no NoExecPaths), calling systemctl and journalctl (unix
  # sockets under /run, readable journal), reading its bundles under
  # $HOME. `systemd-analyze security` rates this 7.9 without these lines.
  hardening="UMask=0077
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths=$INSTALL_DIR
ProtectHome=read-only
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
RestrictNamespaces=yes
LockPersonality=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
CapabilityBoundingSet=CAP_NET_BIND_SERVICE"
  # StartLimitIntervalSec=0: every push restarts the agent (twice for a
  # rolled-back one), and the default limit (5 starts in 10 s) would leave a
  # quickly pushed worker with a failed agent unit that nothing restarts.
  # TimeoutStopSec: below the updater's wait for `systemctl restart` (the
  # unit's own stop timeout + 5 s, supervisor.ts), so systemd's SIGKILL comes
  # first. Type=exec: `systemctl restart` returns once the new agent runs.
  # The ExecStart lines mirror updaterArgv/agentArgv in src/lib/config.ts
  # (flags not given here come from .env.local and the defaults).
  if write_if_changed "$dir/decnet-updater.service" "[Unit]
Description=decnet updater: installs pushed releases and supervises the agent
Documentation=https://github.com/decnet/decnet
After=network-online.target
Wants=network-online.target
StartLimitIntervalSec=0

[Service]
Type=exec
ExecStart=$INSTALL_DIR/updater/current/decnet updater --install-dir $INSTALL_DIR --updater-dir $1/updater --agent-dir $1/agent --agent-supervisor systemd
WorkingDirectory=$INSTALL_DIR
SyslogIdentifier=decnet-updater
Restart=always
RestartSec=2
TimeoutStopSec=30s
$hardening

[Install]
WantedBy=multi-user.target"; then UNITS_CHANGED=1; restart_for updater; fi
  if write_if_changed "$dir/decnet-agent.service" "[Unit]
Description=decnet agent: the worker's workload
After=network-online.target decnet-updater.service
Wants=network-online.target
StartLimitIntervalSec=0

[Service]
Type=exec
ExecStart=$INSTALL_DIR/current/decnet agent --install-dir $INSTALL_DIR --agent-dir $1/agent
WorkingDirectory=$INSTALL_DIR
SyslogIdentifier=decnet-agent
Restart=always
RestartSec=2
TimeoutStopSec=10s
$hardening

[Install]
WantedBy=multi-user.target"; then UNITS_CHANGED=1; restart_for agent; fi
}

enable_and_start() {
  command -v systemctl >/dev/null 2>&1 || { say "systemctl not found: units written, not enabled"; return 0; }
  if [ -n "$ROOT" ]; then
    # Offline: creates the wants/ symlinks inside the staging root.
    systemctl --root="$ROOT" enable decnet-updater.service decnet-agent.service >/dev/null 2>&1 || say "could not enable units under $ROOT"
    return 0
  fi
  if [ "$UNITS_CHANGED" = 1 ]; then systemctl daemon-reload; fi
  systemctl enable decnet-updater.service decnet-agent.service >/dev/null 2>&1
  [ "$START" = 1 ] || return 0
  # The agent first, and the updater once the agent serves: an updater that
  # starts first finds no agent answering yet and restarts it a second time.
  if [ "$RESTART_AGENT" = 1 ]; then
    systemctl reset-failed decnet-agent.service >/dev/null 2>&1 || true
    systemctl restart decnet-agent.service
    # It serves once its pid file names the unit's main process (up to 15 s).
    n=0
    while [ "$(cat "$DEST/agent.pid" 2>/dev/null || true)" != "$(systemctl show -p MainPID --value decnet-agent.service)" ] && [ $n -lt 150 ]; do
      sleep 0.1; n=$((n + 1))
    done
    say "restarted decnet-agent.service"
  fi
  if [ "$RESTART_UPDATER" = 1 ]; then
    systemctl reset-failed decnet-updater.service >/dev/null 2>&1 || true
    systemctl restart decnet-updater.service
    say "restarted decnet-updater.service"
  fi
  # Not running (stopped, or failed before): start; running: nothing happens.
  systemctl start decnet-updater.service decnet-agent.service
}

main "$@"

/** Who is operating: recorded with every push. */
import { hostname, userInfo } from "node:os";

export const os = {
  operator(): string {
    let user = "unknown";
    try {
      user = userInfo().username;
    } catch {}
    return `${user}@${hostname()}`;
  },
};

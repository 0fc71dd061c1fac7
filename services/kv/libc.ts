/**
 * The few Linux system calls the native RESP loop (native_server.ts) makes, through Deno's FFI
 * on the system's C library: sockets, epoll, read/write, eventfd. Constants are Linux's (the
 * same on x86-64 and arm64); `struct epoll_event` is packed on x86-64 (12 bytes) and 16 bytes
 * on arm64.
 *
 * {@link openLibc} refuses (with the reason) outside Linux, without `--allow-ffi`, or when the
 * library does not load; callers then use Deno's own sockets.
 *
 * @module
 */

export const AF_INET = 2;
export const AF_INET6 = 10;
export const SOCK_STREAM = 1;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;
export const SO_REUSEADDR = 2;
export const SO_REUSEPORT = 15;
export const IPPROTO_TCP = 6;
export const TCP_NODELAY = 1;
export const MSG_NOSIGNAL = 0x4000;
export const EPOLL_CLOEXEC = 0o2000000;
export const EPOLL_CTL_ADD = 1;
export const EPOLL_CTL_DEL = 2;
export const EPOLL_CTL_MOD = 3;
export const EPOLLIN = 0x1;
export const EPOLLOUT = 0x4;
export const EPOLLERR = 0x8;
export const EPOLLHUP = 0x10;
export const EFD_NONBLOCK = 0o4000;
export const EFD_CLOEXEC = 0o2000000;
export const EINTR = 4;
export const EAGAIN = 11;
export const ECONNABORTED = 103;

/** Bytes of one `struct epoll_event`, and where its 64-bit data field starts. */
export const EPOLL_EVENT_BYTES = Deno.build.arch === "x86_64" ? 12 : 16;
export const EPOLL_DATA_OFFSET = Deno.build.arch === "x86_64" ? 4 : 8;

export const LIBC_SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  accept4: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32" },
  /** The same call on a thread of Deno's pool: waits without blocking this isolate. */
  epoll_wait_async: {
    name: "epoll_wait",
    parameters: ["i32", "buffer", "i32", "i32"],
    result: "i32",
    nonblocking: true,
  },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
} as const;

export type LibcSymbols = Deno.DynamicLibrary<typeof LIBC_SYMBOLS>["symbols"];

/** The loaded library, with `errno` of this thread and messages for error numbers. */
export interface Libc {
  readonly symbols: LibcSymbols;
  /** errno of this isolate's thread: read it right after the failing call. */
  errno(): number;
  /** The C library's message for an error number (strerror: "Address already in use"). */
  describe(errno: number): string;
  close(): void;
}

/** What {@link openLibc} found. */
export type LibcResult = { ok: true; libc: Libc } | { ok: false; reason: string };

const LIBC_NAMES = ["libc.so.6"];

/** Loads the C library's calls (see the module documentation). */
export function openLibc(names: readonly string[] = LIBC_NAMES): LibcResult {
  if (Deno.build.os !== "linux") return { ok: false, reason: `not Linux (${Deno.build.os})` };
  if (typeof Deno.dlopen !== "function") return { ok: false, reason: "no FFI in this runtime" };
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
    return { ok: false, reason: "no --allow-ffi permission" };
  }
  const errors: string[] = [];
  for (const name of names) {
    try {
      const lib = Deno.dlopen(name, LIBC_SYMBOLS);
      const s = lib.symbols;
      const where = s.__errno_location();
      if (where === null) {
        lib.close();
        errors.push(`${name}: no errno location`);
        continue;
      }
      // errno lives at a fixed place per thread: this isolate always runs on the same one.
      const errnoView = new Deno.UnsafePointerView(where);
      return {
        ok: true,
        libc: {
          symbols: s,
          errno: () => errnoView.getInt32(),
          describe: (errno) => {
            const p = s.strerror(errno);
            return p === null ? `errno ${errno}` : Deno.UnsafePointerView.getCString(p);
          },
          close: () => lib.close(),
        },
      };
    } catch (e) {
      errors.push(`${name}: ${(e as Error).message}`);
    }
  }
  return { ok: false, reason: errors.join("; ") };
}

/** An IPv4 or IPv6 address in network byte order, as bind() takes it. */
export interface IpAddress {
  family: typeof AF_INET | typeof AF_INET6;
  bytes: Uint8Array;
}

/**
 * Parses a numeric IPv4 or IPv6 address (`localhost` counts as 127.0.0.1); null for anything
 * else (a host name: the caller falls back to Deno's sockets, which resolve it).
 */
export function parseIp(host: string): IpAddress | null {
  if (host === "localhost") host = "127.0.0.1";
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  const v4 = parseIpv4(host);
  if (v4 !== null) return { family: AF_INET, bytes: v4 };
  const v6 = parseIpv6(host);
  return v6 === null ? null : { family: AF_INET6, bytes: v6 };
}

function parseIpv4(s: string): Uint8Array | null {
  const parts = s.split(".");
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(parts[i])) return null;
    const v = Number(parts[i]);
    if (v > 255) return null;
    out[i] = v;
  }
  return out;
}

function parseIpv6(s: string): Uint8Array | null {
  if (s.length === 0 || s.length > 45 || s.includes("%")) return null;
  const halves = s.split("::");
  if (halves.length > 2) return null;
  const groups = (part: string): number[] | null => {
    if (part === "") return [];
    const out: number[] = [];
    const items = part.split(":");
    for (let i = 0; i < items.length; i++) {
      const item = items[i];
      if (i === items.length - 1 && item.includes(".")) {
        const v4 = parseIpv4(item);
        if (v4 === null) return null;
        out.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(item)) return null;
        out.push(parseInt(item, 16));
      }
    }
    return out;
  };
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  if (head === null || tail === null) return null;
  const fill = 8 - head.length - tail.length;
  if (halves.length === 1 ? fill !== 0 : fill < 1) return null;
  const all = [...head, ...new Array<number>(halves.length === 2 ? fill : 0).fill(0), ...tail];
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    out[2 * i] = all[i] >> 8;
    out[2 * i + 1] = all[i] & 0xff;
  }
  return out;
}

/** Builds a `sockaddr_in`/`sockaddr_in6` for bind(). */
export function sockaddr(ip: IpAddress, port: number): Uint8Array {
  const b = new Uint8Array(ip.family === AF_INET ? 16 : 28);
  const v = new DataView(b.buffer);
  v.setUint16(0, ip.family, true);
  v.setUint16(2, port, false);
  b.set(ip.bytes, ip.family === AF_INET ? 4 : 8);
  return b;
}

/** Reads a `sockaddr_in`/`sockaddr_in6` (accept4, getsockname); null for other families. */
export function readSockaddr(b: Uint8Array): { hostname: string; port: number } | null {
  if (b.length < 4) return null;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const family = v.getUint16(0, true);
  const port = v.getUint16(2, false);
  if (family === AF_INET && b.length >= 8) return { hostname: b.subarray(4, 8).join("."), port };
  if (family !== AF_INET6 || b.length < 24) return null;
  return { hostname: formatIpv6(b.subarray(8, 24)), port };
}

/** RFC 5952 text of an IPv6 address (longest zero run as `::`, IPv4-mapped as a.b.c.d). */
export function formatIpv6(b: Uint8Array): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((b[2 * i] << 8) | b[2 * i + 1]);
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) {
    return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  }
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(":");
  if (best < 0) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

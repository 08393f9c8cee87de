import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';

/**
 * Reference images given as URLs are fetched by the provider on our behalf and, for some bots, by
 * us: a URL that reaches a private, loopback or link-local address (the cloud metadata service at
 * 169.254.169.254, an admin panel on 10.x) must never be followed. Names are resolved and every
 * address they resolve to is checked; a name that does not resolve is left to fail at the provider.
 */

const privateNetworks = new BlockList();
for (const [network, prefix] of [
  ['0.0.0.0', 8], // "this network"
  ['10.0.0.0', 8],
  ['100.64.0.0', 10], // carrier-grade NAT
  ['127.0.0.0', 8],
  ['169.254.0.0', 16], // link-local, cloud metadata
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15], // benchmarking
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
] as const) {
  privateNetworks.addSubnet(network, prefix, 'ipv4');
}
for (const [network, prefix] of [
  ['::', 128], // unspecified
  ['::1', 128], // loopback
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['ff00::', 8], // multicast
] as const) {
  privateNetworks.addSubnet(network, prefix, 'ipv6');
}

export function isPrivateAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return privateNetworks.check(address, 'ipv4');
  if (family !== 6) return false;
  // IPv4-mapped (::ffff:10.0.0.1) and NAT64-free forms are judged as the IPv4 address they carry.
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped?.[1]) return privateNetworks.check(mapped[1], 'ipv4');
  return privateNetworks.check(address, 'ipv6');
}

const localNames = /(^|\.)(localhost|local|internal|localdomain|home\.arpa)$/i;

export type Resolver = (hostname: string) => Promise<string[]>;

const systemResolver: Resolver = async (hostname) =>
  (await lookup(hostname, { all: true, verbatim: true })).map((entry) => entry.address);

/** Why the URL may not be used as a reference, or null when it may. */
export async function referenceUrlProblem(
  value: string,
  resolve: Resolver = systemResolver,
  timeoutMs = 2_000,
): Promise<string | null> {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'is not a valid URL';
  }
  if (url.protocol !== 'https:') return 'must be an https URL';
  if (url.username !== '' || url.password !== '') return 'must not carry credentials';
  // URL keeps IPv6 hosts in brackets.
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (isIP(host) !== 0) {
    return isPrivateAddress(host) ? 'points at a private or loopback network' : null;
  }
  if (localNames.test(host) || !host.includes('.')) {
    return 'points at a private or loopback network';
  }
  let addresses: string[];
  try {
    addresses = await withTimeout(resolve(host), timeoutMs);
  } catch {
    return null;
  }
  return addresses.some(isPrivateAddress) ? 'points at a private or loopback network' : null;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('timeout')), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

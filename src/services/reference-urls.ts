import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

/**
 * Reference images given as URLs are fetched by the provider on our behalf and, for some bots, by
 * us: a URL that reaches a private, loopback, link-local or otherwise special address (the cloud
 * metadata service at 169.254.169.254, an admin panel on 10.x) must never be followed. Names are
 * resolved and every address they resolve to is checked; a name that does not resolve (or not in
 * time) is refused too, since what it would resolve to later cannot be known.
 *
 * Addresses are classified by ipaddr.js (its `range()`), and only `unicast` is public. IPv6 forms
 * that carry an IPv4 address (IPv4-mapped ::ffff:a.b.c.d, SIIT ::ffff:0:a.b.c.d, NAT64
 * 64:ff9b::a.b.c.d, 6to4 2002:aabb:ccdd::) are judged as that IPv4 address; other IPv6 unicast
 * must be global unicast (2000::/3, all IANA allocates), which leaves out e.g. ::a.b.c.d.
 */

/** The IPv4 address an IPv6 address carries, for the forms that reach it; else null. */
function embeddedIPv4(address: ipaddr.IPv6, range: string): ipaddr.IPv4 | null {
  const word = (index: number) => address.parts[index] ?? 0;
  const fromWords = (high: number, low: number) =>
    new ipaddr.IPv4([word(high) >> 8, word(high) & 0xff, word(low) >> 8, word(low) & 0xff]);
  switch (range) {
    case 'ipv4Mapped':
    case 'rfc6145':
      return fromWords(6, 7);
    case 'rfc6052':
      // Only the well-known NAT64 prefix 64:ff9b::/96; where the local-use 64:ff9b:1::/48 puts
      // the IPv4 address depends on the operator's prefix length.
      return word(2) === 0 ? fromWords(6, 7) : null;
    case '6to4':
      return fromWords(1, 2);
    default:
      return null;
  }
}

/** Whether `address` (an IP address in any form) is anything but public unicast. */
export function isPrivateAddress(address: string): boolean {
  if (!ipaddr.isValid(address)) return true;
  const parsed = ipaddr.parse(address);
  if (parsed.kind() === 'ipv4') return parsed.range() !== 'unicast';
  const ipv6 = parsed as ipaddr.IPv6;
  const range = ipv6.range() as string;
  const carried = embeddedIPv4(ipv6, range);
  if (carried) return carried.range() !== 'unicast';
  return range !== 'unicast' || (ipv6.parts[0] ?? 0) >> 13 !== 0b001;
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
    return isPrivateAddress(host) ? PRIVATE : null;
  }
  if (localNames.test(host) || !host.includes('.')) return PRIVATE;
  let addresses: string[];
  try {
    addresses = await withTimeout(resolve(host), timeoutMs);
  } catch (error) {
    return error instanceof ResolveTimeout
      ? `cannot be checked: its host ${host} did not resolve within ${timeoutMs / 1000} s`
      : unresolved(host);
  }
  if (addresses.length === 0) return unresolved(host);
  return addresses.some(isPrivateAddress) ? PRIVATE : null;
}

const PRIVATE = 'points at a private, loopback or reserved network';

const unresolved = (host: string) =>
  `cannot be checked: its host ${host} does not resolve to an address`;

class ResolveTimeout extends Error {}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ResolveTimeout()), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

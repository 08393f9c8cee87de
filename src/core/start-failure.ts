/**
 * Why a process could not start, said in one line that names the setting to look at, instead of
 * a stack trace. The entries (src/server.ts, src/worker.ts, src/db/migrate-cli.ts) print it and exit
 * with its code; nothing else needs to know.
 */
export class StartFailure extends Error {
  constructor(
    message: string,
    /** sysexits(3): 69 a service it needs is unavailable, 78 a setting is wrong. */
    readonly exitCode: 69 | 78,
  ) {
    super(message);
    this.name = 'StartFailure';
  }
}

interface SystemError {
  code?: string;
  address?: string;
  port?: number;
  hostname?: string;
  errors?: unknown[];
  message?: string;
  cause?: unknown;
}

function systemError(error: unknown): SystemError | null {
  return error !== null && typeof error === 'object' ? (error as SystemError) : null;
}

/** host:port of a URL, never its user or password. */
function endpointOf(url: string, defaultPort: number): string {
  try {
    const parsed = new URL(url);
    return `${parsed.hostname || 'localhost'}:${parsed.port || defaultPort}`;
  } catch {
    return '(an unparsable URL)';
  }
}

const connectionCauses: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'the connection was reset',
  ETIMEDOUT: 'the connection timed out',
  EHOSTUNREACH: 'the host is unreachable',
  ENETUNREACH: 'the network is unreachable',
  ENOTFOUND: 'the host name does not resolve',
  EAI_AGAIN: 'the host name could not be resolved (DNS)',
  // PostgreSQL's own refusals (SQLSTATE).
  '28P01': 'the password was refused',
  '28000': 'the user may not connect',
  '3D000': 'the database does not exist',
  '57P03': 'the server is starting up or shutting down',
};

/**
 * A failure to reach the database or Redis at start, as "cannot reach the database at
 * 127.0.0.1:6390: connection refused (DATABASE_URL)"; null when the error is not about reaching it.
 */
export function unreachableService(
  service: 'the database' | 'Redis',
  setting: 'DATABASE_URL' | 'REDIS_URL' | 'db:move --to',
  url: string,
  error: unknown,
): StartFailure | null {
  // Query builders wrap the driver's error (Drizzle: `cause`).
  let failure = systemError(error);
  while (failure && !failure.code && failure.cause !== undefined) {
    failure = systemError(failure.cause);
  }
  // Node's happy-eyeballs connect reports an AggregateError carrying each address's failure.
  const code = failure?.code ?? systemError(failure?.errors?.[0])?.code;
  const timedOut = /timeout|timed out/i.test(failure?.message ?? '');
  const cause = code ? connectionCauses[code] : timedOut ? 'the connection timed out' : undefined;
  if (!cause) return null;
  const where = endpointOf(url, setting === 'REDIS_URL' ? 6379 : 5432);
  return new StartFailure(`cannot reach ${service} at ${where}: ${cause} (${setting})`, 69);
}

/** A failure to listen on HOST:PORT, naming which of the two to change. */
export function listenFailure(host: string, port: number, error: unknown): StartFailure {
  const code = systemError(error)?.code;
  switch (code) {
    case 'EADDRINUSE':
      return new StartFailure(
        `cannot listen on ${host}:${port}: the port is already in use by another process (PORT)`,
        69,
      );
    case 'EACCES':
      return new StartFailure(
        `cannot listen on ${host}:${port}: permission denied; ports below 1024 need privileges (PORT)`,
        78,
      );
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new StartFailure(
        `cannot listen on ${host}: the host name does not resolve (HOST, e.g. 0.0.0.0 or 127.0.0.1)`,
        78,
      );
    case 'EADDRNOTAVAIL':
      return new StartFailure(
        `cannot listen on ${host}: no network interface of this machine has that address (HOST)`,
        78,
      );
    default:
      return new StartFailure(
        `cannot listen on ${host}:${port}: ${systemError(error)?.message ?? String(error)} (HOST, PORT)`,
        69,
      );
  }
}

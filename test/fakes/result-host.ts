import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * Where a provider's result URLs point (a CDN link, no auth): serves the bodies a test puts,
 * counts the downloads, and can "expire" a link (404), as providers' links do after an hour
 * (Replicate) or some days (WaveSpeed).
 */
export interface FakeResultHost {
  base: string;
  /** Serves `body` at `/<name>` with the given content type; answers its URL. */
  put(name: string, body: Buffer, contentType?: string): string;
  downloads(name: string): number;
  /** The link to `name` answers 404 from now on. */
  expire(name: string): void;
  close(): Promise<void>;
}

export async function startResultHost(): Promise<FakeResultHost> {
  const bodies = new Map<string, { body: Buffer; contentType: string }>();
  const counts = new Map<string, number>();
  const expired = new Set<string>();
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    const name = (request.url ?? '/').slice(1);
    const entry = bodies.get(name);
    if (request.method !== 'GET' || !entry || expired.has(name)) {
      response
        .writeHead(404, { 'content-type': 'application/xml' })
        .end('<Error>NoSuchKey</Error>');
      return;
    }
    counts.set(name, (counts.get(name) ?? 0) + 1);
    response
      .writeHead(200, { 'content-type': entry.contentType, 'content-length': entry.body.length })
      .end(entry.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    base,
    put(name, body, contentType = 'image/png') {
      bodies.set(name, { body, contentType });
      return `${base}/${name}`;
    },
    downloads: (name) => counts.get(name) ?? 0,
    expire(name) {
      expired.add(name);
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * The providers' file upload endpoints, as their documentation describes them, checking each
 * request the way the real ones would need it:
 * - WaveSpeed `POST /api/v3/media/upload/binary`: Bearer key, multipart/form-data with one `file`;
 *   answers `{code: 200, message: "success", data: {type, download_url, filename, size}}`.
 * - Replicate `POST /v1/files`: Bearer token, multipart/form-data with `content` (its type and
 *   filename on the part); answers 201 with the file object (`id`, `content_type`, `size`,
 *   `checksums`, `created_at`, `expires_at`, `metadata`, `urls.get`).
 * Anything else (no key, a wrong field, no filename) is answered 4xx as an error.
 */
export interface FakeUpload {
  provider: 'wavespeed' | 'replicate';
  field: string;
  filename: string;
  contentType: string;
  data: Buffer;
}

export interface FakeUploadServer {
  base: string;
  uploads: FakeUpload[];
  /** The next upload answers this HTTP status (an error in the provider's shape). */
  failNext(status: number): void;
  close(): Promise<void>;
}

export async function startUploadServer(key: string): Promise<FakeUploadServer> {
  const uploads: FakeUpload[] = [];
  let failure: number | null = null;
  const server = createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const wavespeed = request.url === '/api/v3/media/upload/binary';
    const replicate = request.url === '/v1/files';
    const answer = (status: number, json: unknown) =>
      response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(json));
    const refuse = (status: number, message: string) =>
      wavespeed
        ? answer(status, { code: status, message, data: null })
        : answer(status, { title: message, detail: message, status });
    if (request.method !== 'POST' || (!wavespeed && !replicate)) return refuse(404, 'not found');
    if (request.headers.authorization !== `Bearer ${key}`) return refuse(401, 'unauthorized');
    if (failure !== null) {
      const status = failure;
      failure = null;
      return refuse(status, 'upload failed');
    }
    const contentType = request.headers['content-type'] ?? '';
    if (!contentType.startsWith('multipart/form-data')) return refuse(400, 'multipart expected');
    const form = await new Request('http://fake/', {
      method: 'POST',
      headers: { 'content-type': contentType },
      body,
    }).formData();
    const field = wavespeed ? 'file' : 'content';
    const part = form.get(field);
    if (!(part instanceof File) || [...form.keys()].length !== 1) {
      return refuse(400, `exactly one file field "${field}" expected`);
    }
    if (!part.name) return refuse(400, 'the file has no filename');
    const data = Buffer.from(await part.arrayBuffer());
    uploads.push({
      provider: wavespeed ? 'wavespeed' : 'replicate',
      field,
      filename: part.name,
      contentType: part.type,
      data,
    });
    const id = randomUUID().replace(/-/g, '').slice(0, 26);
    if (wavespeed) {
      return answer(200, {
        code: 200,
        message: 'success',
        data: {
          type: 'image',
          download_url: `https://d1q70pf5vjeyhc.cloudfront.net/media/${id}/${part.name}`,
          filename: part.name,
          size: data.length,
        },
      });
    }
    const now = new Date();
    return answer(201, {
      id,
      content_type: part.type || 'application/octet-stream',
      size: data.length,
      checksums: {},
      metadata: {},
      created_at: now.toISOString(),
      expires_at: new Date(now.getTime() + 86_400_000).toISOString(),
      urls: { get: `https://api.replicate.com/v1/files/${id}` },
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    uploads,
    failNext(status) {
      failure = status;
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

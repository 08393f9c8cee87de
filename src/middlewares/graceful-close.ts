import type { FastifyInstance } from 'fastify';

/**
 * While the server closes, requests already in flight finish, and their responses ask the client
 * to close the connection. Without this a keep-alive client holds its idle connection open and
 * close() waits for it until keepAliveTimeout. (Hooks in callback style: they run on every
 * request, and a callback costs less than a promise.)
 */
export function registerGracefulClose(app: FastifyInstance): void {
  let closing = false;
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (closing) reply.header('connection', 'close');
    done(null, payload);
  });
  app.addHook('onResponse', (_request, _reply, done) => {
    if (closing) app.server.closeIdleConnections();
    done();
  });
}

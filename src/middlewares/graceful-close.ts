import type { FastifyInstance } from 'fastify';

/**
 * While the server closes, requests already in flight finish, and their responses ask the client
 * to close the connection. Without this a keep-alive client holds its idle connection open and
 * close() waits for it until keepAliveTimeout.
 */
export function registerGracefulClose(app: FastifyInstance): void {
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onSend', async (_request, reply) => {
    if (closing) reply.header('connection', 'close');
  });
  app.addHook('onResponse', async () => {
    if (closing) app.server.closeIdleConnections();
  });
}

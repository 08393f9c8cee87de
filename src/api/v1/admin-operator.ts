import type { FastifyRequest } from 'fastify';
import { principalLabel } from '../../deps/auth.ts';
import type { Operator } from '../../services/audit.ts';

/**
 * Who makes an admin write, as the audit log records it: the caller's label (`admin:<token id>`),
 * its role and the request's id.
 */
export function operatorOf(request: FastifyRequest): Operator {
  return {
    actor: request.principal ? principalLabel(request.principal) : 'admin',
    role: 'admin',
    requestId: request.id,
  };
}

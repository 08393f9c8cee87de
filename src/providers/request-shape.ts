import type { InputValueType, ReferenceArity, RouteInputs } from '../db/schema/index.ts';
import { ProviderError, type ProviderRequest } from './types.ts';

/**
 * The shape of one provider model's request, as its documentation gives it and the catalog keeps
 * it (model_routes): the field its references go in and whether it takes one URL or a list, and
 * how each of our parameters is sent. Adapters build their JSON from it, never from guesses.
 */
export interface RequestShape {
  /** Null: the model takes no references. */
  referenceField: string | null;
  referenceArity: ReferenceArity;
  maxReferences: number;
  inputs: RouteInputs;
}

/**
 * The model's inputs for a request: `prompt` (not for a tool, which takes none), each parameter as
 * the shape says (renamed, typed, or left out) and the references in their field. A request that
 * does not fit the shape is refused here, before it costs a call.
 */
export function shapedInput(provider: string, request: ProviderRequest): Record<string, unknown> {
  const shape = request.shape;
  if (!shape) throw new ProviderError(`${provider}: ${request.model} has no request shape`, false);
  const input: Record<string, unknown> = {};
  if (request.kind !== 'tool') input.prompt = request.prompt;
  for (const [name, value] of Object.entries(request.parameters)) {
    const rule = shape.inputs[name];
    if (rule === null) continue;
    input[rule?.field ?? name] = typedValue(provider, name, value, rule?.type ?? 'string');
  }
  const references = request.referenceUrls;
  if (references.length === 0) {
    if (request.kind === 'tool') throw invalidInput(`${provider}: a tool needs an image`);
    return input;
  }
  if (shape.referenceField === null || references.length > shape.maxReferences) {
    throw invalidInput(
      `${provider}: ${request.model} takes at most ${shape.maxReferences} reference images, not ${references.length}`,
    );
  }
  input[shape.referenceField] = shape.referenceArity === 'string' ? references[0] : references;
  return input;
}

function typedValue(
  provider: string,
  name: string,
  value: string,
  type: InputValueType,
): string | number | boolean {
  switch (type) {
    case 'string':
      return value;
    case 'boolean':
      if (value === 'true' || value === 'false') return value === 'true';
      break;
    case 'integer':
      if (/^-?\d+$/.test(value) && Number.isSafeInteger(Number(value))) return Number(value);
      break;
    case 'number':
      if (value.trim() !== '' && Number.isFinite(Number(value))) return Number(value);
      break;
  }
  // The catalog's values are checked when they are set; one that is not a `type` is our mistake.
  throw new ProviderError(`${provider}: parameter ${name} = "${value}" is not a ${type}`, false);
}

function invalidInput(message: string): ProviderError {
  return new ProviderError(message, false, undefined, 'invalid_input');
}

import AjvCompiler, { type ValidatorFactory } from '@fastify/ajv-compiler';
import type { LazyCompilations } from './lazy-compilation.ts';

/**
 * How requests are validated: Fastify's Ajv compiler, configured per part of the request.
 *
 * - Path and query values are text, so they are coerced to the schema's types ("42" → 42).
 * - A JSON body has real types: nothing is coerced ("42", true or null are not a number), and a
 *   field the schema does not name is refused (body schemas say additionalProperties: false).
 * - Every string of the body, query and path, and every property name of the body, is checked for
 *   what PostgreSQL cannot store in text or jsonb: NUL characters and unpaired UTF-16 surrogates.
 * - Every number must be finite: Ajv coerces "Infinity" and "1e400" to Infinity and then skips its
 *   own finiteness check (strictNumbers), so this is checked after it.
 *
 * Each problem is an Ajv error, so it is answered like any other validation error: a 422
 * validation_failed naming the field (core/problem.ts).
 */

interface Issue {
  keyword: string;
  instancePath: string;
  schemaPath: string;
  params: Record<string, unknown>;
  message: string;
}

/** An Ajv validate function, as the compiler gives it and Fastify calls it. */
type AjvValidate = ReturnType<ReturnType<ValidatorFactory>>;
type ValidateFunction = ((data: unknown, context?: unknown) => boolean) & {
  errors?: unknown[] | null;
  schemaEnv?: unknown;
};

const shared = { useDefaults: true, allErrors: true, strictNumbers: true } as const;
const bodyOptions = { ...shared, coerceTypes: false, removeAdditional: false } as const;
const textOptions = { ...shared, coerceTypes: 'array', removeAdditional: true } as const;

/** Parts whose strings are stored or put in queries; headers are checked where they are read. */
const checkedForText = new Set(['body', 'querystring', 'params']);

const unpairedSurrogate = /[\uD800-\uDFFF]/u;

/** What is wrong with a string PostgreSQL is to store, or null. */
function textProblem(text: string): string | null {
  if (text.includes('\u0000')) return 'must not contain NUL characters (\\u0000)';
  if (unpairedSurrogate.test(text)) {
    return 'must be valid Unicode text (it has an unpaired UTF-16 surrogate)';
  }
  return null;
}

function pointer(path: string, key: string | number): string {
  return `${path}/${String(key).replaceAll('~', '~0').replaceAll('/', '~1')}`;
}

function issue(instancePath: string, keyword: string, message: string): Issue {
  return { keyword, instancePath, schemaPath: '#', params: {}, message };
}

/** Strings that PostgreSQL would refuse and numbers that are not finite, anywhere in `data`. */
function inputIssues(data: unknown, checkText: boolean): Issue[] {
  const issues: Issue[] = [];
  // Iterative: a deeply nested body must not overflow the stack.
  const stack: { value: unknown; path: string }[] = [{ value: data, path: '' }];
  while (stack.length > 0 && issues.length < 20) {
    const { value, path } = stack.pop() as { value: unknown; path: string };
    if (typeof value === 'string') {
      const problem = checkText ? textProblem(value) : null;
      if (problem) issues.push(issue(path, 'text', problem));
    } else if (typeof value === 'number') {
      if (!Number.isFinite(value)) issues.push(issue(path, 'finite', 'must be a finite number'));
    } else if (Array.isArray(value)) {
      for (let i = value.length - 1; i >= 0; i--) {
        stack.push({ value: value[i], path: pointer(path, i) });
      }
    } else if (value !== null && typeof value === 'object' && !Buffer.isBuffer(value)) {
      for (const [key, member] of Object.entries(value).reverse()) {
        const problem = checkText ? textProblem(key) : null;
        if (problem) {
          issues.push(issue(path, 'text', `has a property name that ${problem}`));
          continue;
        }
        stack.push({ value: member, path: pointer(path, key) });
      }
    }
  }
  return issues;
}

function withInputChecks(ajvValidate: AjvValidate, httpPart: string | undefined): AjvValidate {
  const validate = ajvValidate as unknown as ValidateFunction;
  const checkText = httpPart !== undefined && checkedForText.has(httpPart);
  const checked: ValidateFunction = (data, context) => {
    const valid = validate(data, context);
    const ajvErrors = (validate.errors ?? []) as { instancePath?: string }[];
    // A value Ajv already refused (1e400 "must be integer") is not named twice.
    const refused = new Set(ajvErrors.map((error) => error.instancePath));
    const issues = inputIssues(data, checkText).filter((i) => !refused.has(i.instancePath));
    checked.errors = issues.length === 0 ? validate.errors : [...ajvErrors, ...issues];
    return valid && issues.length === 0;
  };
  // Fastify passes the parent object (so Ajv can coerce a root value) only to an Ajv function.
  checked.schemaEnv = validate.schemaEnv;
  return checked as unknown as AjvValidate;
}

/**
 * An app's schemaController.compilersFactory.buildValidator (see the top of this file). Like
 * Fastify's own, it keeps its Ajv instances in pools of its own, one per app. Each validator is
 * compiled when a request first needs it (`compilations`).
 */
export function requestValidators(compilations: LazyCompilations): ValidatorFactory {
  const bodyPool = AjvCompiler();
  const textPool = AjvCompiler();
  return (externalSchemas, options) => {
    const plugins = options?.plugins ?? [];
    const forBody = bodyPool(externalSchemas, { plugins, customOptions: bodyOptions });
    const forText = textPool(externalSchemas, { plugins, customOptions: textOptions });
    return (route) => {
      const compile = route.httpPart === 'body' ? forBody : forText;
      const compiled = compilations.once(
        () => withInputChecks(compile(route), route.httpPart) as unknown as ValidateFunction,
      );
      const validate: ValidateFunction = (data, context) => {
        const check = compiled();
        const valid = check(data, context);
        validate.errors = check.errors;
        return valid;
      };
      // Fastify passes the parent object (for Ajv's coercion of a root value) to a function with a
      // schemaEnv, as every Ajv function has; the real one is known only once compiled.
      validate.schemaEnv = true;
      return validate as unknown as AjvValidate;
    };
  };
}

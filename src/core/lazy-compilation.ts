import SerializerSelector, { type SerializerFactory } from '@fastify/fast-json-stringify-compiler';

/**
 * Fastify compiles every route's request validators (Ajv) and response serializers
 * (fast-json-stringify) before it listens. With this app's routes that was the larger part of
 * a start's CPU time, and memory for code of routes a process may never serve. The compilers built
 * here compile each one the first time a request needs it; `compileAll` compiles whatever is still
 * pending, so a test still finds a schema that does not compile before a user does.
 */
export class LazyCompilations {
  private readonly pending = new Set<() => unknown>();

  /** Returns `compile`'s result, computed on the first call; `compileAll` calls it too. */
  once<T>(compile: () => T): () => T {
    let compiled: { value: T } | null = null;
    const get = (): T => {
      if (compiled === null) {
        compiled = { value: compile() };
        this.pending.delete(get);
      }
      return compiled.value;
    };
    this.pending.add(get);
    return get;
  }

  /** Compiles every validator and serializer not compiled yet; answers how many there were. */
  compileAll(): number {
    const pending = [...this.pending];
    for (const compile of pending) compile();
    return pending.length;
  }

  /** Fastify's own serializer compiler, each serializer built on its first response. */
  serializers(): SerializerFactory {
    const selector = SerializerSelector();
    return (externalSchemas, options) => {
      const build = selector(externalSchemas, options);
      return (route) => {
        const serializer = this.once(() => build(route));
        return (data) => serializer()(data);
      };
    };
  }
}

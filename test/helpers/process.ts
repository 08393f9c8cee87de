import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { nodeArgsFor } from './entry-points.ts';

export interface ServerProcess {
  child: ChildProcess;
  output: () => string;
  /** Resolves with the base URL once the server logs that it listens. */
  listening: Promise<string>;
  exited: Promise<number | null>;
}

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Starts the API (`src/server.ts`, compiled) as its own process, the way operators run it:
 * `node dist/server.js`, or through `npm start` (npm, its shell, then node).
 */
export function startServer(
  env: Record<string, string>,
  via: 'node' | 'npm start' = 'node',
): ServerProcess {
  const childEnv = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? repoRoot,
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: 'info',
    ...env,
  };
  const child =
    via === 'node'
      ? spawn(process.execPath, nodeArgsFor('src/server.ts'), {
          env: childEnv,
          stdio: ['ignore', 'pipe', 'pipe'],
        })
      : spawn('npm', ['start'], {
          cwd: repoRoot,
          env: childEnv,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
  let output = '';
  const listening = new Promise<string>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /"address":"(http:\/\/[^"]+)"/.exec(output);
      if (match?.[1]) resolve(match[1]);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) =>
      reject(new Error(`server exited with ${code} before listening:\n${output}`)),
    );
  });
  listening.catch(() => undefined);
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  return { child, output: () => output, listening, exited };
}

export interface WorkerProcess {
  child: ChildProcess;
  output: () => string;
  /** Resolves with the worker id once the process logs `worker started`. */
  started: Promise<string>;
  exited: Promise<number | null>;
}

/** Starts the worker (`src/worker.ts`, compiled) as its own process, the way operators run it. */
export function startWorkerProcess(env: Record<string, string>): WorkerProcess {
  const child = spawn(process.execPath, nodeArgsFor('src/worker.ts'), {
    env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const started = new Promise<string>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /"worker":"([^"]+)"[^\n]*"msg":"worker started"/.exec(output);
      if (match?.[1]) resolve(match[1]);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code, signal) =>
      reject(new Error(`worker exited (${code ?? signal}) before starting:\n${output}`)),
    );
  });
  started.catch(() => undefined);
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  return { child, output: () => output, started, exited };
}

/** Stops a child process: SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
export async function stopProcess(
  proc: { child: ChildProcess; exited: Promise<number | null> },
  graceMs = 10_000,
): Promise<void> {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) return;
  proc.child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const killed = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      proc.child.kill('SIGKILL');
      resolve();
    }, graceMs);
  });
  await Promise.race([proc.exited, killed]);
  clearTimeout(timer);
  await proc.exited;
}

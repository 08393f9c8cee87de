import { randomUUID } from 'node:crypto';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';

const extensions: Record<string, string> = {
  'image/png': 'png',
  'image/jpeg': 'jpg',
  'image/webp': 'webp',
};

/**
 * Images we keep ourselves (the local provider's; providers that hand back bytes) live under
 * DATA_DIR/results/<generation id>/<position>.<ext>. A path is relative to DATA_DIR in the
 * database, so the folder can move with its data.
 */
export class ResultStore {
  private readonly root: string;

  constructor(dataDir: string) {
    this.root = resolve(dataDir);
  }

  /** Writes the image (atomically: a retry never leaves half a file) and answers its stored path. */
  async save(
    generationId: string,
    position: number,
    data: Buffer,
    mimeType: string,
  ): Promise<string> {
    const relative = join('results', generationId, `${position}.${extensions[mimeType] ?? 'bin'}`);
    const target = this.absolute(relative);
    await mkdir(dirname(target), { recursive: true });
    const temporary = `${target}.${randomUUID()}.tmp`;
    await writeFile(temporary, data);
    await rename(temporary, target);
    return relative;
  }

  /** The file of a stored path; refuses paths that would leave the store. */
  absolute(storagePath: string): string {
    const target = resolve(this.root, storagePath);
    if (!target.startsWith(`${this.root}${sep}`)) {
      throw new Error(`stored path outside the result store: ${storagePath}`);
    }
    return target;
  }
}

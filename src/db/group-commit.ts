/**
 * Group commit: many callers' small writes go to the database together, as one statement and one
 * commit, instead of a round trip and a WAL flush each. Nothing waits for a timer: the first write
 * goes at once, and whatever arrives while writes are in flight forms the next batch. A batch that
 * fails is written again item by item, so one bad item never fails its neighbours.
 *
 * `write` answers one result per item, in the items' order.
 */
export class GroupCommit<Item, Result> {
  private readonly queue: {
    item: Item;
    resolve: (result: Result) => void;
    reject: (error: unknown) => void;
  }[] = [];
  private inFlight = 0;

  constructor(
    private readonly write: (items: Item[]) => Promise<Result[]>,
    private readonly options: { maxBatch: number; maxInFlight: number } = {
      maxBatch: 256,
      maxInFlight: 2,
    },
  ) {}

  add(item: Item): Promise<Result> {
    return new Promise((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < this.options.maxInFlight && this.queue.length > 0) {
      const batch = this.queue.splice(0, this.options.maxBatch);
      this.inFlight++;
      void this.flush(batch).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }

  private async flush(batch: typeof this.queue): Promise<void> {
    try {
      const results = await this.write(batch.map((pending) => pending.item));
      batch.forEach((pending, index) => {
        if (index < results.length) pending.resolve(results[index] as Result);
        else pending.reject(new Error('a group commit returned no result for an item'));
      });
    } catch (error) {
      if (batch.length === 1) {
        batch[0]?.reject(error);
        return;
      }
      await Promise.all(
        batch.map(async (pending) => {
          try {
            const [result] = await this.write([pending.item]);
            if (result === undefined) throw new Error('a group commit returned no result');
            pending.resolve(result);
          } catch (single) {
            pending.reject(single);
          }
        }),
      );
    }
  }
}

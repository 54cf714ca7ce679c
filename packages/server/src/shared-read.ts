/**
 * A read that concurrent callers share without any of them seeing a result
 * older than its own call: a caller that arrives while a read is under way
 * (which may have begun before what the caller saw was written) waits for the
 * next read, and every caller that arrives meanwhile shares that one. So
 * under load a burst of requests costs two reads, not one each, and each
 * still reads after it arrived (a governance change or a signed intent
 * committed before the request is in what it gets).
 */
export class SharedRead<A, T> {
  readonly #read: (arg: A) => Promise<T>;
  readonly #merge: (a: A, b: A) => A;
  #running: Promise<T> | null = null;
  #queued: Promise<T> | null = null;
  #queuedArg: A | undefined;

  /** `merge` combines the arguments of callers sharing one read (e.g. the earliest time asked for). */
  constructor(read: (arg: A) => Promise<T>, merge: (a: A, b: A) => A) {
    this.#read = read;
    this.#merge = merge;
  }

  read(arg: A): Promise<T> {
    const running = this.#running;
    if (running === null) return this.#start(arg);
    this.#queuedArg = this.#queuedArg === undefined ? arg : this.#merge(this.#queuedArg, arg);
    if (this.#queued === null) {
      const next = () => {
        const a = this.#queuedArg as A;
        this.#queued = null;
        this.#queuedArg = undefined;
        return this.#start(a);
      };
      this.#queued = running.then(next, next);
    }
    return this.#queued;
  }

  #start(arg: A): Promise<T> {
    const run = this.#read(arg).finally(() => {
      if (this.#running === run) this.#running = null;
    });
    this.#running = run;
    return run;
  }
}

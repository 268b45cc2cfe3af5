import t from 'tap';
import { Semaphore } from '../../src/core/semaphore.js';

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

t.test('permits are handed out up to the limit', async (t) => {
  const sem = new Semaphore(2);
  t.equal(sem.available, 2);
  await sem.acquire();
  t.ok(sem.tryAcquire());
  t.equal(sem.available, 0);
  t.notOk(sem.tryAcquire(), 'no permit left');
  sem.release();
  t.equal(sem.available, 1);
  sem.release();
  t.equal(sem.available, 2);
  t.throws(() => sem.release(), { code: 'INVALID' }, 'over-release is a bug, not extra capacity');
  t.equal(sem.available, 2);
});

t.test('waiters are served first in, first out', async (t) => {
  const sem = new Semaphore(1);
  await sem.acquire();
  const order: number[] = [];
  const all = [1, 2, 3, 4].map((n) => sem.acquire().then(() => order.push(n)));
  await tick();
  t.equal(sem.waiting, 4);
  t.same(order, []);
  for (let i = 0; i < 4; i++) {
    sem.release();
    await tick();
  }
  await Promise.all(all);
  t.same(order, [1, 2, 3, 4]);
  t.equal(sem.waiting, 0);
  t.equal(sem.available, 0, 'the last waiter still holds the permit');
  sem.release();
  t.equal(sem.available, 1);
});

t.test('a release hands the permit to a waiter, not to a newcomer', async (t) => {
  const sem = new Semaphore(1);
  await sem.acquire();
  let waiterGotIt = false;
  const waiting = sem.acquire().then(() => {
    waiterGotIt = true;
  });
  sem.release();
  t.notOk(sem.tryAcquire(), 'tryAcquire cannot jump the queue');
  t.equal(sem.available, 0);
  await waiting;
  t.ok(waiterGotIt);
});

t.test('tryAcquire does not overtake queued waiters', async (t) => {
  const sem = new Semaphore(1);
  t.ok(sem.tryAcquire());
  const waiting = sem.acquire();
  t.notOk(sem.tryAcquire());
  sem.release();
  await waiting;
  sem.release();
  t.ok(sem.tryAcquire());
});

t.test('an aborted wait rejects with the reason and takes no permit', async (t) => {
  const sem = new Semaphore(1);
  await sem.acquire();
  const controller = new AbortController();
  const aborted = sem.acquire(controller.signal);
  const next = sem.acquire();
  t.equal(sem.waiting, 2);
  controller.abort(new Error('deadline'));
  await t.rejects(aborted, { message: 'deadline' });
  t.equal(sem.waiting, 1);
  sem.release();
  await next;
  t.equal(sem.available, 0, 'the permit went to the live waiter');
  sem.release();
  t.equal(sem.available, 1);

  const already = new AbortController();
  already.abort(new Error('too late'));
  await t.rejects(sem.acquire(already.signal), { message: 'too late' });
  t.equal(sem.available, 1);
});

t.test('many waiters: no permit lost, bounded concurrency', async (t) => {
  const sem = new Semaphore(3);
  let running = 0;
  let peak = 0;
  const job = async () => {
    await sem.acquire();
    running++;
    peak = Math.max(peak, running);
    await tick();
    running--;
    sem.release();
  };
  await Promise.all(Array.from({ length: 5000 }, job));
  t.equal(peak, 3);
  t.equal(sem.available, 3);
  t.equal(sem.waiting, 0);
});

t.test('rejects nonsense sizes', async (t) => {
  t.throws(() => new Semaphore(0), { code: 'INVALID' });
  t.throws(() => new Semaphore(1.5), { code: 'INVALID' });
});

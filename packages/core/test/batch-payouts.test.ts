/**
 * Batch payouts (issue 13): an intent may carry a list of outputs. Its shape
 * keeps every single-output intent byte-identical (`outputs` is optional;
 * a batch's `amount` is the sum and `to` the first destination), its digest
 * covers the list in order, and the policy engine judges each output as a
 * transfer of its own (rule, destination, look-alike, per-destination
 * limits) while the wallet and requester limits count the total. The ledger
 * records one entry per intent carrying its outputs, so a retry of the same
 * batch is never counted twice.
 */
import { describe, expect, it } from 'vitest';
import { CustosError } from '../src/errors.js';
import { LedgerIndex, type LedgerView, ledgerSums, ledgerViewOf } from '../src/ledger.js';
import {
  DEFAULT_MAX_BATCH_OUTPUTS,
  type Intent,
  intentDigest,
  intentOutputs,
  intent as intentSchema,
  type LedgerEntry,
  type Payout,
  type Policy,
  type PolicyRule,
  policy as policySchema,
} from '../src/objects.js';
import { evaluate, type PolicyDecision } from '../src/policy.js';
import type { GovernanceState } from '../src/state.js';
import type { Address, Amount, Millis } from '../src/types.js';
import {
  buildState,
  EXCHANGE,
  entry,
  HOUR,
  MINUTE,
  makeIntent,
  makePolicy,
  NOW,
  POISON,
  person,
  SUPPLIER,
  signIntent,
} from './support/policy-fixture.js';

const backend = person('backend');
const alice = person('alice');
const bob = person('bob');

/** Customers' addresses, all different (the engine compares text only). */
const customer = (k: number) => `bc1qcustomer${k}`.padEnd(42, '0') as Address;

const payouts: PolicyRule = {
  id: 'payouts',
  match: {
    destination: { kind: 'any' },
    wallets: ['hot'],
    assets: ['BTC'],
    maxAmount: '100000' as Amount,
    requesterRoles: ['service'],
  },
  action: 'allow',
  approvals: [],
};
const large: PolicyRule = {
  id: 'large',
  match: { destination: { kind: 'any' } },
  action: 'allow',
  approvals: [{ m: 2, role: 'approver' }],
};
const HOT_DAILY = {
  id: 'hot-daily',
  scope: 'wallet-asset' as const,
  wallet: 'hot',
  asset: 'BTC',
  windowMs: 24 * HOUR,
  max: '250000' as Amount,
};
const PER_CUSTOMER = {
  id: 'per-customer',
  scope: 'destination' as const,
  asset: 'BTC',
  windowMs: 24 * HOUR,
  max: '150000' as Amount,
};
const PER_REQUESTER = {
  id: 'per-backend',
  scope: 'requester' as const,
  asset: 'BTC',
  windowMs: 24 * HOUR,
  max: '1000000' as Amount,
};

function exchange(p: Policy): GovernanceState {
  return buildState({
    members: [
      { person: backend, roles: ['requester', 'service'] },
      { person: alice, roles: ['approver'] },
      { person: bob, roles: ['approver'] },
    ],
    policies: [p],
    addresses: [entry('exchange', EXCHANGE), entry('supplier', SUPPLIER)],
  });
}

const policy = makePolicy([payouts, large], {
  limits: [HOT_DAILY, PER_CUSTOMER, PER_REQUESTER],
  lookalike: { prefix: 8, suffix: 4, action: 'warn' },
});
const s = exchange(policy);

function pays(list: readonly [Address, string][]): Payout[] {
  return list.map(([to, amount]) => ({ to, amount: amount as Amount }));
}

/** A batch intent of the backend: `amount` the sum, `to` the first destination. */
function batch(outputs: readonly Payout[], overrides: Partial<Intent> = {}): Intent {
  const sum = outputs.reduce((t, o) => t + BigInt(o.amount), 0n);
  return makeIntent(backend, {
    to: outputs[0]?.to as Address,
    amount: sum.toString() as Amount,
    outputs: [...outputs],
    ...overrides,
  });
}

function entryOf(i: Intent, at: Millis): LedgerEntry {
  return {
    intent: intentDigest(i),
    wallet: i.wallet,
    asset: i.asset,
    amount: i.amount,
    to: i.to,
    ...(i.outputs === undefined ? {} : { outputs: i.outputs }),
    requester: i.requester,
    at,
  };
}

function decide(i: Intent, ledger: readonly LedgerEntry[] | LedgerView = [], state = s): PolicyDecision {
  return evaluate({ state, intent: signIntent(backend, i), approvals: [], ledger, now: NOW });
}

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
    return undefined;
  } catch (err) {
    if (err instanceof CustosError) return err.code;
    throw err;
  }
}

describe('the batch intent shape', () => {
  it('leaves a single-output intent as it was: no outputs field, the same digest', () => {
    const one = makeIntent(backend, { to: customer(1), amount: '5000' as Amount });
    expect('outputs' in one).toBe(false);
    expect(intentOutputs(one)).toEqual([{ to: customer(1), amount: '5000' }]);
    expect(intentDigest(intentSchema.parse(JSON.parse(JSON.stringify(one))))).toBe(intentDigest(one));
  });

  it('binds amount to the sum and to to the first output, so a batch reads one way only', () => {
    const outputs = pays([
      [customer(1), '1000'],
      [customer(2), '2000'],
    ]);
    const good = batch(outputs);
    expect(good.amount).toBe('3000');
    expect(good.to).toBe(customer(1));
    expect(codeOf(() => intentSchema.parse({ ...good, amount: '3001' }))).toBe('INVALID_VALUE');
    expect(codeOf(() => intentSchema.parse({ ...good, to: customer(2) }))).toBe('INVALID_VALUE');
  });

  it('refuses a batch of one, a zero output, and a batch on an EVM chain', () => {
    const one = batch(
      pays([
        [customer(1), '1000'],
        [customer(2), '2000'],
      ]),
    );
    expect(
      codeOf(() => intentSchema.parse({ ...one, outputs: one.outputs?.slice(0, 1), amount: '1000' })),
    ).toBe('INVALID_VALUE');
    const zero = {
      ...one,
      outputs: pays([
        [customer(1), '3000'],
        [customer(2), '0'],
      ]),
    };
    expect(codeOf(() => intentSchema.parse(zero))).toBe('INVALID_VALUE');
    expect(codeOf(() => intentSchema.parse({ ...one, chain: 'eip155:1' }))).toBeDefined();
  });

  it('digests the list in order: the same payments in another order are another intent', () => {
    const a = batch(
      pays([
        [customer(1), '1000'],
        [customer(2), '2000'],
      ]),
    );
    const b = { ...a, to: customer(2), outputs: [...(a.outputs ?? [])].reverse() };
    expect(intentDigest(intentSchema.parse(b))).not.toBe(intentDigest(a));
  });
});

describe('evaluate a batch: each output is a transfer, the limits count the sum', () => {
  it('allows a batch of customer payouts under the automated rule, with no approval', () => {
    const d = decide(
      batch(
        pays([
          [customer(1), '40000'],
          [customer(2), '50000'],
          [customer(3), '60000'],
        ]),
      ),
    );
    expect(d).toMatchObject({ kind: 'allow', rules: ['payouts'], approvers: [] });
  });

  it('judges each output by its own amount: one output over the per-transaction maximum needs the approvers', () => {
    const d = decide(
      batch(
        pays([
          [customer(1), '40000'],
          [customer(2), '100001'],
        ]),
      ),
    );
    expect(d.kind).toBe('pending');
    expect(d.kind === 'pending' && d.missing.map((m) => m.rule)).toEqual(['large']);
  });

  it('checks each destination against the rules: one output no rule allows refuses the batch', () => {
    const bookOnly = exchange(
      makePolicy(
        [
          {
            id: 'book',
            match: { destination: { kind: 'address-book' } },
            action: 'allow',
            approvals: [{ m: 1, role: 'approver' }],
          },
        ],
        { limits: [HOT_DAILY] },
      ),
    );
    expect(
      decide(
        batch(
          pays([
            [EXCHANGE, '1000'],
            [SUPPLIER, '1000'],
          ]),
        ),
        [],
        bookOnly,
      ).kind,
    ).toBe('pending');
    const d = decide(
      batch(
        pays([
          [EXCHANGE, '1000'],
          [customer(7), '1000'],
          [SUPPLIER, '1000'],
        ]),
      ),
      [],
      bookOnly,
    );
    expect(d).toMatchObject({ kind: 'deny', code: 'DESTINATION_NOT_ALLOWED' });
    expect(d.kind === 'deny' && d.message).toContain(customer(7));
  });

  it('THREATS 20: counts the total against the wallet limit though every output is under it', () => {
    // 5 x 60,000 = 300,000 > 250,000; each output alone is far below.
    const d = decide(batch(pays([0, 1, 2, 3, 4].map((k) => [customer(k), '60000'] as [Address, string]))));
    expect(d).toMatchObject({ kind: 'deny', code: 'LIMIT_EXCEEDED' });
    expect(d.kind === 'deny' && d.message).toContain('hot-daily');
  });

  it('counts the total against the requester limit, and earlier payouts with it', () => {
    const earlier = makeIntent(backend, { to: customer(9), amount: '90000' as Amount });
    const ledger = [entryOf(earlier, NOW - HOUR)];
    const strict = exchange(
      makePolicy([payouts], { limits: [HOT_DAILY, { ...PER_REQUESTER, max: '200000' as Amount }] }),
    );
    const d = decide(
      batch(
        pays([
          [customer(1), '60000'],
          [customer(2), '60000'],
        ]),
      ),
      ledger,
      strict,
    );
    expect(d).toMatchObject({ kind: 'deny', code: 'LIMIT_EXCEEDED' });
    expect(d.kind === 'deny' && d.message).toContain('per-backend');
  });

  it('applies the per-destination limit to each destination, summing two outputs to the same one', () => {
    // Two outputs to one customer: 80,000 + 80,000 = 160,000 > 150,000.
    const twice = decide(
      batch(
        pays([
          [customer(1), '80000'],
          [customer(1), '80000'],
        ]),
      ),
    );
    expect(twice).toMatchObject({ kind: 'deny', code: 'LIMIT_EXCEEDED' });
    expect(twice.kind === 'deny' && twice.message).toContain(customer(1));
    // The ledger's earlier payment to one destination of the batch counts for that destination only.
    const earlier = makeIntent(backend, { to: customer(2), amount: '100000' as Amount });
    const ledger = [entryOf(earlier, NOW - HOUR)];
    const d = decide(
      batch(
        pays([
          [customer(1), '60000'],
          [customer(2), '60000'],
        ]),
      ),
      ledger,
    );
    expect(d).toMatchObject({ kind: 'deny', code: 'LIMIT_EXCEEDED' });
    expect(d.kind === 'deny' && d.message).toContain(customer(2));
    expect(
      decide(
        batch(
          pays([
            [customer(1), '60000'],
            [customer(3), '60000'],
          ]),
        ),
        ledger,
      ).kind,
    ).toBe('allow');
  });

  it("counts an earlier batch's outputs toward each of their destinations", () => {
    const first = batch(
      pays([
        [customer(1), '30000'],
        [customer(2), '100000'],
      ]),
    );
    const ledger = [entryOf(first, NOW - HOUR)];
    const again = decide(makeIntent(backend, { to: customer(2), amount: '60000' as Amount }), ledger);
    expect(again).toMatchObject({ kind: 'deny', code: 'LIMIT_EXCEEDED' });
    expect(decide(makeIntent(backend, { to: customer(1), amount: '60000' as Amount }), ledger).kind).toBe(
      'allow',
    );
  });

  it('THREATS 21: a look-alike in one output flags the whole batch (refused under the automated rule)', () => {
    const d = decide(
      batch(
        pays([
          [customer(1), '1000'],
          [customer(2), '1000'],
          [POISON, '1000'],
        ]),
      ),
    );
    expect(d).toMatchObject({ kind: 'deny', code: 'LOOKALIKE_ADDRESS' });
    expect(d.kind === 'deny' && d.message).toContain(POISON);
    // Through a rule with approvers it is a warning they see, naming the output.
    const withPeople = decide(
      batch(
        pays([
          [customer(1), '1000'],
          [POISON, '100001'],
        ]),
      ),
    );
    expect(withPeople.kind).toBe('pending');
    expect(withPeople.kind === 'pending' && withPeople.warnings.map((w) => w.code)).toContain(
      'LOOKALIKE_ADDRESS',
    );
  });

  it('warns FIRST_PAYMENT per destination never paid before', () => {
    const earlier = makeIntent(backend, { to: customer(1), amount: '1000' as Amount });
    const d = decide(
      batch(
        pays([
          [customer(1), '1000'],
          [customer(2), '1000'],
        ]),
      ),
      [entryOf(earlier, NOW - HOUR)],
    );
    expect(
      d.kind === 'allow' && d.warnings.filter((w) => w.code === 'FIRST_PAYMENT').map((w) => w.message),
    ).toEqual([`no earlier payment to ${customer(2)}`]);
  });

  it('refuses a batch larger than the governed maximum (policy maxBatchOutputs, default 250)', () => {
    expect(DEFAULT_MAX_BATCH_OUTPUTS).toBe(250);
    const big = (n: number) =>
      batch(pays(Array.from({ length: n }, (_, k) => [customer(k), '400'] as [Address, string])));
    const roomy = exchange(makePolicy([payouts], { limits: [{ ...HOT_DAILY, max: '10000000' as Amount }] }));
    expect(decide(big(250), [], roomy).kind).toBe('allow');
    expect(decide(big(251), [], roomy)).toMatchObject({ kind: 'deny', code: 'POLICY_DENIED' });
    const three = policySchema.parse({
      ...makePolicy([payouts], { limits: [HOT_DAILY] }),
      maxBatchOutputs: 3,
    });
    const d = decide(big(4), [], exchange(three));
    expect(d).toMatchObject({ kind: 'deny', code: 'POLICY_DENIED' });
    expect(d.kind === 'deny' && d.message).toContain('at most 3');
    expect(decide(big(3), [], exchange(three)).kind).toBe('allow');
  });

  it('does not count a batch twice when the same intent is asked again (exclude)', () => {
    const b = batch(
      pays([
        [customer(1), '100000'],
        [customer(2), '100000'],
      ]),
    );
    const ledger = [entryOf(b, NOW - MINUTE)];
    expect(decide(b, ledger).kind).toBe('allow');
    expect(decide(b, new LedgerIndex(ledger)).kind).toBe('allow');
    // Another batch of the same payments is another intent: the wallet limit sees both.
    expect(
      decide(
        batch(
          pays([
            [customer(3), '60000'],
            [customer(4), '60000'],
          ]),
        ),
        ledger,
      ),
    ).toMatchObject({
      kind: 'deny',
      code: 'LIMIT_EXCEEDED',
    });
  });
});

describe('the ledger of batches: LedgerIndex answers as the reference scan', () => {
  it('gives the same sums, history and first payments as ledgerViewOf, with removal and pruning', () => {
    const entries: LedgerEntry[] = [];
    for (let k = 0; k < 30; k++) {
      const i =
        k % 3 === 0
          ? makeIntent(backend, { to: customer(k % 5), amount: `${1000 + k}` as Amount })
          : batch(
              pays([
                [customer(k % 5), `${2000 + k}`],
                [customer((k + 1) % 5), `${3000 + k}`],
                [customer(k % 5), `${500 + k}`],
              ]),
            );
      entries.push(entryOf(i, NOW - ((k * 7) % 13) * MINUTE));
    }
    const index = new LedgerIndex(entries);
    const probe = batch(
      pays([
        [customer(0), '1000'],
        [customer(1), '1000'],
        [customer(4), '1000'],
      ]),
    );
    const compare = (list: readonly LedgerEntry[]) => {
      const ref = ledgerViewOf(list);
      for (const ex of [intentDigest(probe), list[4]?.intent ?? intentDigest(probe)]) {
        for (const use of ledgerSums([policy], probe, ex, NOW)) {
          expect(index.sum(use.query)).toBe(ref.sum(use.query));
        }
        for (let c = 0; c < 6; c++) expect(index.paid(customer(c), ex)).toBe(ref.paid(customer(c), ex));
        expect(index.recent('hot', 'BTC', 10, ex)).toEqual(ref.recent('hot', 'BTC', 10, ex));
      }
    };
    compare(entries);
    index.remove(entries[4]?.intent as never);
    compare(entries.filter((_, n) => n !== 4));
    index.prune(NOW - 6 * MINUTE);
    compare(entries.filter((e, n) => n !== 4 && e.at > NOW - 6 * MINUTE));
  });

  it('asks one destination sum per distinct destination of a batch, with what the batch pays it', () => {
    const b = batch(
      pays([
        [customer(1), '100'],
        [customer(2), '200'],
        [customer(1), '300'],
      ]),
    );
    const uses = ledgerSums([policy], b, intentDigest(b), NOW);
    expect(uses.map((u) => [u.limit.id, u.query.to ?? null, u.amount])).toEqual([
      ['hot-daily', null, 600n],
      ['per-customer', customer(1), 400n],
      ['per-customer', customer(2), 200n],
      ['per-backend', null, 600n],
    ]);
  });
});

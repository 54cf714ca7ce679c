/**
 * The request form: a wallet and a destination from the address book, both
 * read from governance verified here, an amount in its unit. The intent is
 * built here, its digest signed by the passkey, and sent as it is: what the
 * passkey signed is what every signer checks.
 */
import { type Intent, intentDigest, intent as intentSchema, toHex } from '@custos/core';
import { useState } from 'preact/hooks';
import { postSignedObject } from '../api.js';
import { errorText, type Signed } from '../context.js';
import { assertDigest } from '../passkey.js';

const DAY = 24 * 60 * 60_000;

export function RequestView(props: { s: Signed }) {
  const { s } = props;
  const now = Date.now();
  const wallets = [...s.state.wallets.values()].filter((w) => w.chain.startsWith('bitcoin:'));
  const [walletId, setWalletId] = useState(wallets[0]?.id ?? '');
  const wallet = wallets.find((w) => w.id === walletId);
  const book = [...s.state.addresses.values()].filter(
    (a) => a.value.chain === wallet?.chain && a.activeFrom <= now,
  );
  const [to, setTo] = useState(book[0]?.value.address ?? '');
  const [amount, setAmount] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    if (wallet === undefined) return;
    setBusy(true);
    setError(null);
    try {
      if (!/^[1-9][0-9]*$/.test(amount)) throw new Error('the amount is a whole number of satoshi');
      const at = Date.now();
      const intent: Intent = intentSchema.parse({
        v: 1,
        org: s.genesis,
        wallet: wallet.id,
        chain: wallet.chain,
        asset: wallet.assets[0],
        amount,
        to,
        requester: s.device.member,
        device: s.device.device,
        nonce: toHex(crypto.getRandomValues(new Uint8Array(16))),
        createdAt: at,
        expiresAt: at + DAY,
      });
      const signature = await assertDigest(s.device.passkey.credentialId, intentDigest(intent));
      const answer = (await postSignedObject('/v1/intents', { intent, signature })) as { id: string };
      location.hash = `#/intent/${answer.id}`;
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <section aria-labelledby="request-title">
      <h1 id="request-title">Request a withdrawal</h1>
      <form class="form" onSubmit={submit}>
        <label>
          Wallet
          <select
            name="wallet"
            value={walletId}
            onChange={(e) => setWalletId((e.target as HTMLSelectElement).value)}
          >
            {wallets.map((w) => (
              <option key={w.id} value={w.id}>
                {w.id} ({w.chain})
              </option>
            ))}
          </select>
        </label>
        <label>
          Destination (address book)
          <select name="to" value={to} onChange={(e) => setTo((e.target as HTMLSelectElement).value)}>
            {book.map((a) => (
              <option key={a.value.address} value={a.value.address}>
                {a.value.label} — {a.value.address}
              </option>
            ))}
          </select>
        </label>
        <label>
          Amount (satoshi)
          <input
            name="amount"
            inputMode="numeric"
            required
            value={amount}
            onInput={(e) => setAmount((e.target as HTMLInputElement).value.trim())}
          />
        </label>
        <button type="submit" disabled={busy || wallet === undefined}>
          Sign request with passkey
        </button>
      </form>
      {error === null ? null : (
        <p role="alert" class="error">
          {error}
        </p>
      )}
    </section>
  );
}

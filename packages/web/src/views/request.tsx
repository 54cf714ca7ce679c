/**
 * The request form: a wallet and a destination from the address book, both
 * read from governance verified here, an amount in its unit (satoshi for
 * Bitcoin; for a Safe, the asset chosen from the wallet's governed assets,
 * in its decimals, turned into base units here). The intent is
 * built here, its digest signed by the passkey, and sent as it is: what the
 * passkey signed is what every signer checks.
 */
import { type Intent, intentDigest, intent as intentSchema, toHex } from '@custos/core';
import { useState } from 'preact/hooks';
import { postSignedObject } from '../api.js';
import { errorText, type Signed } from '../context.js';
import { assertDigest } from '../passkey.js';

const DAY = 24 * 60 * 60_000;

/**
 * A decimal amount in base units, refused when it carries more fractional
 * digits than the asset has (nothing is rounded away): `1.5` USDT is 1500000.
 */
export function baseUnits(text: string, decimals: number): bigint {
  const m = /^(0|[1-9][0-9]*)(?:\.([0-9]+))?$/.exec(text);
  if (m === null) throw new Error('the amount is a decimal number, e.g. 1.5');
  const fraction = m[2] ?? '';
  if (fraction.length > decimals) throw new Error(`the asset has ${decimals} decimals`);
  const base = BigInt(m[1] + fraction.padEnd(decimals, '0'));
  if (base === 0n) throw new Error('the amount is more than zero');
  return base;
}

export function RequestView(props: { s: Signed }) {
  const { s } = props;
  const now = Date.now();
  const wallets = [...s.state.wallets.values()].filter(
    (w) => w.chain.startsWith('bitcoin:') || w.kind === 'evm-safe',
  );
  const [walletId, setWalletId] = useState(wallets[0]?.id ?? '');
  const wallet = wallets.find((w) => w.id === walletId);
  const evm = wallet?.kind === 'evm-safe';
  const assets = (wallet?.assets ?? [])
    .map((id) => s.state.assets.get(id)?.value)
    .filter((a) => a !== undefined && a.chain === wallet?.chain);
  const [assetId, setAssetId] = useState('');
  const asset = evm ? (assets.find((a) => a?.id === assetId) ?? assets[0]) : undefined;
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
      let base: string;
      if (evm) {
        if (asset === undefined) throw new Error(`${wallet.id} has no governed asset on ${wallet.chain}`);
        base = baseUnits(amount, asset.decimals).toString();
      } else {
        if (!/^[1-9][0-9]*$/.test(amount)) throw new Error('the amount is a whole number of satoshi');
        base = amount;
      }
      const at = Date.now();
      const intent: Intent = intentSchema.parse({
        v: 1,
        org: s.genesis,
        wallet: wallet.id,
        chain: wallet.chain,
        asset: evm ? asset?.id : wallet.assets[0],
        amount: base,
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
            onChange={(e) => {
              const next = (e.target as HTMLSelectElement).value;
              setWalletId(next);
              const chain = wallets.find((w) => w.id === next)?.chain;
              setTo(
                [...s.state.addresses.values()].find((a) => a.value.chain === chain)?.value.address ?? '',
              );
            }}
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
        {evm ? (
          <label>
            Asset
            <select
              name="asset"
              value={asset?.id ?? ''}
              onChange={(e) => setAssetId((e.target as HTMLSelectElement).value)}
            >
              {assets.map((a) => (
                <option key={a?.id} value={a?.id}>
                  {a?.symbol} ({a?.kind === 'erc20' ? `ERC-20 ${a.contract}` : 'native'}, {a?.decimals}{' '}
                  decimals)
                </option>
              ))}
            </select>
          </label>
        ) : null}
        <label>
          {evm ? `Amount (${asset?.symbol ?? ''})` : 'Amount (satoshi)'}
          <input
            name="amount"
            inputMode={evm ? 'decimal' : 'numeric'}
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

import { CustosClient, type DeviceSigner, openSealedDeviceKey } from '@custos/cli/client';
import { CustosError } from '@custos/core';

/** At start: the backend's device key, sealed in a file on this server, opened once. */
export async function connect(baseUrl: string, keyFile: string, password: string): Promise<CustosClient> {
  const signer: DeviceSigner = await openSealedDeviceKey(keyFile, password);
  return new CustosClient({ baseUrl, signer });
}

/** One customer's withdrawal, signed by the backend's device and sent through the HTTP API. */
export async function payOut(
  client: CustosClient,
  org: string,
  to: string,
  sats: bigint,
): Promise<{ id: string; status: string } | { held: string }> {
  try {
    const { id, status } = await client.submitTransfer({
      org,
      wallet: 'hot',
      chain: 'bitcoin:regtest',
      asset: 'BTC',
      amount: sats.toString(),
      to,
    });
    // 'approved' under an automated rule (no person approves; every signer still checks its
    // own limits), 'pending' when the policy wants approvers for this one.
    return { id, status };
  } catch (err) {
    // A limit reached or a look-alike address: hold the withdrawal for a person to look at.
    if (err instanceof CustosError && (err.code === 'LIMIT_EXCEEDED' || err.code === 'LOOKALIKE_ADDRESS')) {
      return { held: err.code };
    }
    throw err;
  }
}

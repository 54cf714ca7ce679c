/** A governance source for in-process signer tests: serves what the test gives it, as JSON on the wire would. */
import type { SignedGovernanceEntry } from '@custos/core';
import type { GovernanceSource } from '@custos/signer';

export class MemorySource implements GovernanceSource {
  constructor(public entries: SignedGovernanceEntry[]) {}

  async governanceEntries(afterSeq: number, uptoSeq: number): Promise<unknown> {
    // Round-trip through JSON text: the signer must cope with exactly what a wire would carry.
    return JSON.parse(
      JSON.stringify(this.entries.filter((e) => e.entry.seq > afterSeq && e.entry.seq <= uptoSeq)),
    );
  }
}

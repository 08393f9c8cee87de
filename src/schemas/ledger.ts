import { Type } from 'typebox';
import { type LedgerEntryKind, ledgerEntryKinds } from '../db/schema/ledger.ts';
import { exampleLedgerEntry } from './examples.ts';

export const LedgerEntry = Type.Object(
  {
    id: Type.Integer(),
    entry_no: Type.Integer({ description: "1, 2, 3… in the user's ledger" }),
    amount: Type.Integer({ description: 'Signed credits' }),
    balance_after: Type.Integer(),
    kind: Type.Unsafe<LedgerEntryKind>({ type: 'string', enum: [...ledgerEntryKinds] }),
    reference_type: Type.Union([Type.String(), Type.Null()]),
    reference_id: Type.Union([Type.String(), Type.Null()]),
    reason: Type.Union([Type.String(), Type.Null()]),
    actor: Type.String(),
    created_at: Type.String({ format: 'date-time' }),
  },
  { examples: [exampleLedgerEntry] },
);

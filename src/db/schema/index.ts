export * from './audit.ts';
export * from './catalog.ts';
export * from './generations.ts';
export * from './ledger.ts';
export * from './payments.ts';
export * from './reconciliation.ts';
export * from './settings.ts';
export * from './users.ts';

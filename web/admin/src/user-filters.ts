/** The filters GET /admin/users (and a broadcast's audience) knows, as an operator names them. */
export const USER_FILTERS = [
  { value: 'active_7d', label: 'Active 7 days' },
  { value: 'active_30d', label: 'Active 30 days' },
  { value: 'paying', label: 'Paying' },
  { value: 'with_balance', label: 'With balance' },
  { value: 'new', label: 'New' },
  { value: 'banned', label: 'Banned' },
  { value: 'blocked', label: 'Blocked the bot' },
] as const;

export type UserFilter = (typeof USER_FILTERS)[number]['value'];

export function filterLabel(value: string): string {
  return USER_FILTERS.find((filter) => filter.value === value)?.label ?? value;
}

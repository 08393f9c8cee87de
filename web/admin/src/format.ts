const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const integer = new Intl.NumberFormat();

export function formatDateTime(iso: string | null): string {
  return iso === null ? '—' : dateTime.format(new Date(iso));
}

export function formatCredits(amount: number): string {
  return integer.format(amount);
}

/** "+50" / "−20": a signed amount as an operator reads it. */
export function formatSigned(amount: number): string {
  return amount > 0 ? `+${integer.format(amount)}` : `−${integer.format(-amount)}`;
}

export function displayName(user: {
  first_name: string | null;
  last_name: string | null;
  username: string | null;
  telegram_id: number;
}): string {
  const name = [user.first_name, user.last_name].filter(Boolean).join(' ');
  return name || (user.username ? `@${user.username}` : String(user.telegram_id));
}

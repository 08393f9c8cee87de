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

/**
 * Two date inputs' days ("2026-11-27", or empty) as the API's created_at range in the operator's
 * time zone: from the start of `from` up to the end of `until` (the API's `to` is exclusive).
 */
export function dayRange(from: string, until: string): { from?: string; to?: string } {
  const range: { from?: string; to?: string } = {};
  if (from) range.from = new Date(`${from}T00:00:00`).toISOString();
  if (until) {
    const end = new Date(`${until}T00:00:00`);
    end.setDate(end.getDate() + 1);
    range.to = end.toISOString();
  }
  return range;
}

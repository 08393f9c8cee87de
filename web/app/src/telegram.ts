/**
 * What Telegram hands the Mini App: the signed initData (sent as `Authorization: tma …`), the
 * user, the theme and the language. Read from `window.Telegram.WebApp` (Telegram's script) when
 * present, else from the launch parameters in the address's fragment, which Telegram always sets.
 */

export interface TelegramTheme {
  [name: string]: string | undefined;
}

/** How an invoice opened with openInvoice was closed (core.telegram.org/bots/webapps). */
export type InvoiceStatus = 'paid' | 'cancelled' | 'failed' | 'pending';

interface WebApp {
  initData: string;
  themeParams?: TelegramTheme;
  ready?: () => void;
  expand?: () => void;
  /** Bot API 6.1+. */
  openInvoice?: (url: string, callback?: (status: InvoiceStatus) => void) => void;
  openTelegramLink?: (url: string) => void;
}

declare global {
  interface Window {
    Telegram?: { WebApp?: WebApp };
  }
}

export interface Launch {
  initData: string;
  telegramId: number;
  languageCode: string | null;
  theme: TelegramTheme;
}

/** The launch, or null outside Telegram (no signed initData naming a user). */
export function readLaunch(): Launch | null {
  const fragment = new URLSearchParams(window.location.hash.slice(1));
  const webApp = window.Telegram?.WebApp;
  const initData = webApp?.initData || fragment.get('tgWebAppData') || '';
  if (initData === '') return null;
  const userJson = new URLSearchParams(initData).get('user');
  if (!userJson) return null;
  let user: { id?: unknown; language_code?: unknown };
  try {
    user = JSON.parse(userJson) as typeof user;
  } catch {
    return null;
  }
  if (typeof user.id !== 'number') return null;
  let theme: TelegramTheme = webApp?.themeParams ?? {};
  const themeJson = fragment.get('tgWebAppThemeParams');
  if (!webApp?.themeParams && themeJson) {
    try {
      theme = JSON.parse(themeJson) as TelegramTheme;
    } catch {
      theme = {};
    }
  }
  whenBridgeLoads((bridge) => {
    bridge.ready?.();
    bridge.expand?.();
  });
  return {
    initData,
    telegramId: user.id,
    languageCode: typeof user.language_code === 'string' ? user.language_code : null,
    theme,
  };
}

/**
 * Telegram's script (telegram-web-app.js) loads `async`: the app starts from the launch fragment
 * without waiting for it. `defer`red, it ran before the app (deferred scripts keep their order), so
 * a phone opening the app uncached waited for a new connection to telegram.org before the first
 * paint (not measurable here: this machine cannot reach telegram.org). What needs the bridge runs
 * when it is there: at once if it is, else when the script has loaded.
 */
function whenBridgeLoads(use: (bridge: WebApp) => void): void {
  const bridge = window.Telegram?.WebApp;
  if (bridge) {
    use(bridge);
    return;
  }
  document.querySelector('script[src*="telegram-web-app.js"]')?.addEventListener('load', () => {
    const loaded = window.Telegram?.WebApp;
    if (loaded) use(loaded);
  });
}

/** Telegram's theme as the CSS variables Telegram's own clients set (`--tg-theme-bg-color`…). */
export function applyTheme(theme: TelegramTheme): void {
  for (const [name, value] of Object.entries(theme)) {
    if (value)
      document.documentElement.style.setProperty(`--tg-theme-${name.replaceAll('_', '-')}`, value);
  }
}

/**
 * Opens an invoice link (createInvoiceLink's) in Telegram's payment sheet; `closed` hears how it
 * ended. False when this Telegram cannot (no openInvoice: an old client, or Telegram's script did
 * not load).
 */
export function openInvoice(link: string, closed: (status: InvoiceStatus) => void): boolean {
  const webApp = window.Telegram?.WebApp;
  if (!webApp?.openInvoice) return false;
  try {
    webApp.openInvoice(link, closed);
    return true;
  } catch {
    // Telegram's script throws WebAppMethodUnsupported on clients older than Bot API 6.1.
    return false;
  }
}

/** Opens a t.me link inside Telegram (a share sheet, a chat); elsewhere, in a new window. */
export function openTelegramLink(url: string): void {
  const webApp = window.Telegram?.WebApp;
  if (webApp?.openTelegramLink) webApp.openTelegramLink(url);
  else window.open(url, '_blank', 'noopener');
}

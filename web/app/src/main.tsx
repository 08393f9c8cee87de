import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';

/**
 * The Mini App's shell. Telegram opens it with its launch parameters in the address's fragment
 * (tgWebAppData=…); a browser that opened it directly has none, and is told where to open it.
 * The gallery and composer come next (issue 10).
 */
function openedInTelegram(): boolean {
  return new URLSearchParams(window.location.hash.slice(1)).has('tgWebAppData');
}

function MiniApp() {
  if (!openedInTelegram()) {
    return (
      <main style={{ fontFamily: 'system-ui, sans-serif', padding: 24, textAlign: 'center' }}>
        <h1>Open this in Telegram</h1>
        <p>This app runs inside Telegram: open it from the bot's menu button.</p>
      </main>
    );
  }
  return (
    <main style={{ fontFamily: 'system-ui, sans-serif', padding: 24 }}>
      <h1>Gallery</h1>
    </main>
  );
}

const root = document.getElementById('root');
if (!root) throw new Error('index.html has no #root');
createRoot(root).render(
  <StrictMode>
    <MiniApp />
  </StrictMode>,
);

import {
  Alert,
  Button,
  Card,
  Center,
  Divider,
  PasswordInput,
  Stack,
  Text,
  Title,
} from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import { type FormEvent, useEffect, useRef, useState } from 'react';
import { dataOf } from '../../../shared/api.ts';
import { useApi, useAuth } from '../auth.tsx';

/** Telegram's Login Widget script (the panel's CSP admits it and its frame, nothing else of theirs). */
const TELEGRAM_WIDGET = 'https://telegram.org/js/telegram-widget.js?22';

/** Fields the Telegram Login Widget puts on its redirect to this page. */
const TELEGRAM_LOGIN_FIELDS = [
  'id',
  'first_name',
  'last_name',
  'username',
  'photo_url',
  'auth_date',
  'hash',
] as const;

function telegramLoginRedirect(): Record<string, string> | null {
  const query = new URLSearchParams(window.location.search);
  if (!query.has('id') || !query.has('hash')) return null;
  const fields: Record<string, string> = {};
  for (const name of TELEGRAM_LOGIN_FIELDS) {
    const value = query.get(name);
    if (value !== null) fields[name] = value;
  }
  return fields;
}

/**
 * Telegram's Login Widget for the bot. It sends the operator back to /admin/login with the signed
 * fields in the address (data-auth-url), which this page then exchanges for the session cookie: no
 * global callback (data-onauth, a string of code) for the widget to run.
 */
function TelegramLoginButton({ botUsername }: { botUsername: string }) {
  const slot = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const target = slot.current;
    if (!target) return;
    const script = document.createElement('script');
    script.async = true;
    script.src = TELEGRAM_WIDGET;
    script.dataset.telegramLogin = botUsername;
    script.dataset.size = 'large';
    script.dataset.authUrl = `${window.location.origin}/admin/login`;
    target.append(script);
    return () => target.replaceChildren();
  }, [botUsername]);
  return <div ref={slot} data-testid="telegram-login" />;
}

export function LoginPage() {
  const api = useApi();
  const options = useQuery({
    queryKey: ['sign-in options'],
    queryFn: async () => dataOf(await api.GET('/api/v1/admin/auth/options')),
    staleTime: Number.POSITIVE_INFINITY,
  });
  const telegramLogin = options.data?.telegram_login ?? null;
  const { signInWithToken, signInWithTelegram } = useAuth();
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const redirectHandled = useRef(false);

  // Telegram sent the operator back here with its signed fields: open the session with them,
  // then take them out of the address bar and history.
  useEffect(() => {
    const fields = telegramLoginRedirect();
    if (fields === null || redirectHandled.current) return;
    redirectHandled.current = true;
    window.history.replaceState(null, '', window.location.pathname);
    setBusy(true);
    signInWithTelegram(fields)
      .catch((failure: unknown) =>
        setError(failure instanceof Error ? failure.message : String(failure)),
      )
      .finally(() => setBusy(false));
  }, [signInWithTelegram]);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await signInWithToken(token.trim());
    } catch (failure) {
      setError(failure instanceof Error ? failure.message : String(failure));
    } finally {
      setBusy(false);
    }
  }

  return (
    <Center mih="100vh" p="md">
      <Card withBorder w="100%" maw={420} padding="lg">
        <Stack>
          <Title order={1} size="h3">
            Operator panel
          </Title>
          {telegramLogin && (
            <>
              <Text size="sm" c="dimmed">
                Sign in with your Telegram account:
              </Text>
              <TelegramLoginButton botUsername={telegramLogin.bot_username} />
              <Divider label="or" labelPosition="center" />
            </>
          )}
          <Text size="sm" c="dimmed">
            Sign in with an admin token.
          </Text>
          {error && (
            <Alert color="red" title="Not signed in" role="alert">
              {error}
            </Alert>
          )}
          <form onSubmit={submit}>
            <Stack>
              <PasswordInput
                label="Admin token"
                autoComplete="off"
                value={token}
                onChange={(event) => setToken(event.currentTarget.value)}
                required
              />
              <Button type="submit" loading={busy}>
                Sign in
              </Button>
            </Stack>
          </form>
        </Stack>
      </Card>
    </Center>
  );
}

import { Alert, Button, Card, Center, PasswordInput, Stack, Text, Title } from '@mantine/core';
import { type FormEvent, useEffect, useRef, useState } from 'react';
import { useAuth } from '../auth.tsx';

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

export function LoginPage() {
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

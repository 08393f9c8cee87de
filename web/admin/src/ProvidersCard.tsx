import { Alert, Card, Table, Text, Title } from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import { dataOf, type Ok } from '../../shared/api.ts';
import { useApi } from './auth.tsx';
import { formatDateTime } from './format.ts';

type Provider = Ok<'/api/v1/admin/providers', 'get'>['providers'][number];

/** The workers read the balances about once a minute: asking more often shows nothing new. */
const PROVIDERS_REFRESH_MS = 60_000;

const statusText: Record<Provider['status'], string> = {
  ok: 'ok',
  low: 'low balance',
  unknown: 'unknown',
  error: 'check failed',
};

const money = (provider: Provider): string =>
  provider.balance === null
    ? '—'
    : `${provider.balance.toLocaleString(undefined, { maximumFractionDigits: 2 })} ${provider.currency ?? ''}`.trim();

/** The image providers' accounts (GET /admin/providers): balance, last check, whether they take work. */
export function ProvidersCard() {
  const api = useApi();
  const providers = useQuery({
    queryKey: ['providers'],
    queryFn: async () => dataOf(await api.GET('/api/v1/admin/providers')).providers,
    refetchInterval: PROVIDERS_REFRESH_MS,
  });
  return (
    <Card withBorder>
      <Title order={3} size="h5" mb="xs">
        Providers
      </Title>
      {providers.error && (
        <Alert color="red" role="alert">
          {providers.error.message}
        </Alert>
      )}
      {providers.data?.length === 0 && <Text c="dimmed">No provider accounts configured.</Text>}
      {providers.data && providers.data.length > 0 && (
        <Table.ScrollContainer minWidth={420}>
          <Table aria-label="Providers" data-testid="providers">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Provider</Table.Th>
                <Table.Th>Balance</Table.Th>
                <Table.Th>Checked</Table.Th>
                <Table.Th>New generations</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {providers.data.map((provider) => (
                <Table.Tr key={provider.provider}>
                  <Table.Td>{provider.provider}</Table.Td>
                  <Table.Td>
                    {money(provider)}
                    <Text size="xs" c="dimmed">
                      {statusText[provider.status]}
                      {provider.error ? `: ${provider.error}` : ''}
                    </Text>
                  </Table.Td>
                  <Table.Td>{formatDateTime(provider.checked_at)}</Table.Td>
                  <Table.Td>
                    {provider.available
                      ? 'taken'
                      : `refused${provider.unavailable_reason ? `: ${provider.unavailable_reason}` : ''}`}
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
    </Card>
  );
}

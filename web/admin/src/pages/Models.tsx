import {
  Alert,
  Anchor,
  Badge,
  Button,
  Card,
  Code,
  Group,
  Loader,
  SimpleGrid,
  Stack,
  Text,
  Title,
} from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import { Link } from 'react-router';
import { dataOf } from '../../../shared/api.ts';
import { useApi, useAuth } from '../auth.tsx';
import { formatCredits } from '../format.ts';
import { ActiveButton, type AdminModel, availabilityText, defaultPrice } from '../models.tsx';

function Fact({ label, value }: { label: string; value: string }) {
  return (
    <div>
      <Text size="xs" c="dimmed">
        {label}
      </Text>
      <Text size="sm">{value}</Text>
    </div>
  );
}

function ModelCard({ model, isAdmin }: { model: AdminModel; isAdmin: boolean }) {
  const price = defaultPrice(model);
  return (
    <Card withBorder data-testid="model" data-key={model.key}>
      <Stack gap="xs">
        <Group justify="space-between" align="flex-start" wrap="nowrap">
          <div>
            <Anchor component={Link} to={`/models/${model.key}`} fw={600}>
              {model.name}
            </Anchor>
            <Text size="xs" c="dimmed">
              <Code>{model.key}</Code> · {model.kind}
            </Text>
          </div>
          <Group gap={4} justify="flex-end">
            <Badge variant="dot" color={model.active ? 'green' : 'gray'}>
              {model.active ? 'active' : 'inactive'}
            </Badge>
            {!model.available && (
              <Badge variant="dot" color="orange">
                unavailable
              </Badge>
            )}
          </Group>
        </Group>
        <SimpleGrid cols={{ base: 2, sm: 4 }}>
          <Fact label="Order" value={String(model.sort_order)} />
          <Fact
            label="Price (defaults)"
            value={price === null ? '—' : `${formatCredits(price)} credits`}
          />
          <Fact
            label="Prices"
            value={`${model.prices.length} current, ${model.price_history} ever`}
          />
          <Fact
            label="Availability"
            value={
              model.available
                ? 'available'
                : model.unavailable_reason
                  ? availabilityText[model.unavailable_reason]
                  : 'unavailable'
            }
          />
        </SimpleGrid>
        <div>
          <Text size="xs" c="dimmed">
            Providers, in order
          </Text>
          {model.routes.map((route) => (
            <Text size="sm" key={route.priority} data-testid="route">
              {route.priority}. {route.provider} · <Code>{route.provider_model}</Code>
              {route.provider_edit_model && (
                <>
                  {' '}
                  (edits: <Code>{route.provider_edit_model}</Code>)
                </>
              )}
            </Text>
          ))}
        </div>
        <Group gap="xs" justify="flex-end">
          <Button
            component={Link}
            to={`/models/${model.key}`}
            size="xs"
            variant="default"
            aria-label={`${isAdmin ? 'Edit' : 'Open'} ${model.name}`}
          >
            {isAdmin ? 'Edit' : 'Open'}
          </Button>
          {isAdmin && <ActiveButton model={model} />}
        </Group>
      </Stack>
    </Card>
  );
}

export function ModelsPage() {
  const api = useApi();
  const { me } = useAuth();
  const isAdmin = me !== null && me !== false && me.role === 'admin';
  const models = useQuery({
    queryKey: ['models'],
    queryFn: async () => dataOf(await api.GET('/api/v1/admin/models')),
  });
  const list = models.data?.models ?? [];
  const active = list.filter((model) => model.active).length;
  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>Models and prices</Title>
        {isAdmin && (
          <Button component={Link} to="/models/new">
            New model
          </Button>
        )}
      </Group>
      <Text c="dimmed" size="sm">
        {isAdmin
          ? 'A change reaches every API process within seconds and is audited; a generation keeps the price it was accepted at.'
          : 'Only administrators change models and prices.'}
      </Text>
      {models.error && (
        <Alert color="red" role="alert">
          {models.error.message}
        </Alert>
      )}
      {models.isPending && <Loader aria-label="Loading" />}
      {models.isSuccess && (
        <Text size="sm" data-testid="models-total">
          {list.length} models, {active} active
        </Text>
      )}
      <SimpleGrid cols={{ base: 1, lg: 2 }}>
        {list.map((model) => (
          <ModelCard key={model.key} model={model} isAdmin={isAdmin} />
        ))}
      </SimpleGrid>
    </Stack>
  );
}

import { AppShell, Burger, Button, Group, NavLink, Text, Title } from '@mantine/core';
import { useDisclosure, useReducedMotion } from '@mantine/hooks';
import type { ReactNode } from 'react';
import { NavLink as RouterLink, useLocation } from 'react-router';
import { type Me, useAuth } from './auth.tsx';

const pages = [
  { to: '/dashboard', label: 'Dashboard', adminOnly: false },
  { to: '/users', label: 'Users', adminOnly: false },
  { to: '/generations', label: 'Generations', adminOnly: false },
  { to: '/payments', label: 'Payments', adminOnly: false },
  { to: '/broadcasts', label: 'Broadcasts', adminOnly: false },
  { to: '/models', label: 'Models and prices', adminOnly: false },
  { to: '/settings', label: 'Settings', adminOnly: false },
  { to: '/audit', label: 'Audit log', adminOnly: true },
] as const;

/** The frame of every page: a header and a navigation that folds away on a phone. */
export function Shell({ me, children }: { me: Me; children: ReactNode }) {
  const [opened, { toggle, close }] = useDisclosure();
  const { signOut } = useAuth();
  const location = useLocation();
  const reduceMotion = useReducedMotion();
  return (
    <AppShell
      transitionDuration={reduceMotion ? 0 : 200}
      header={{ height: 56 }}
      navbar={{ width: 220, breakpoint: 'sm', collapsed: { mobile: !opened } }}
      padding="md"
    >
      <AppShell.Header>
        <Group h="100%" px="md" justify="space-between" wrap="nowrap">
          <Group gap="sm" wrap="nowrap">
            <Burger
              opened={opened}
              onClick={toggle}
              hiddenFrom="sm"
              size="sm"
              aria-label="Navigation"
            />
            <Title order={1} size="h4">
              Operator panel
            </Title>
          </Group>
          <Group gap="sm" wrap="nowrap">
            <Text size="sm" c="dimmed" visibleFrom="xs" data-testid="whoami">
              {me.actor} · {me.role}
            </Text>
            <Button variant="default" size="xs" onClick={() => void signOut()}>
              Sign out
            </Button>
          </Group>
        </Group>
      </AppShell.Header>
      <AppShell.Navbar p="xs" aria-label="Pages">
        {pages
          .filter((page) => !page.adminOnly || me.role === 'admin')
          .map((page) => (
            <NavLink
              key={page.to}
              component={RouterLink}
              to={page.to}
              label={page.label}
              active={location.pathname.startsWith(page.to)}
              onClick={close}
            />
          ))}
      </AppShell.Navbar>
      <AppShell.Main>{children}</AppShell.Main>
    </AppShell>
  );
}

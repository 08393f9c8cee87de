import '@mantine/core/styles.css';
import { type CSSVariablesResolver, createTheme, MantineProvider } from '@mantine/core';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { BrowserRouter } from 'react-router';
import { ApiError } from '../../shared/api.ts';
import { App } from './App.tsx';
import { AuthProvider } from './auth.tsx';

const queries = new QueryClient({
  defaultOptions: {
    queries: {
      // A refusal (4xx) will not change by asking again; a failure of the network or server may.
      retry: (failures, error) =>
        failures < 2 && !(error instanceof ApiError && error.status < 500),
      staleTime: 15_000,
    },
  },
});

// Operators who ask their system for less motion get none. White on the primary colour's shade 6
// is 3.6:1, below WCAG AA's 4.5:1; on shade 8 it is above.
const theme = createTheme({ respectReducedMotion: true, primaryShade: { light: 8, dark: 8 } });

// Mantine's dimmed text (gray 6 on white, 3.3:1) is below WCAG AA's 4.5:1; gray 7 is above it.
const contrast: CSSVariablesResolver = (current) => ({
  variables: {},
  light: { '--mantine-color-dimmed': current.colors.gray[7] ?? '#495057' },
  dark: {},
});

const root = document.getElementById('root');
if (!root) throw new Error('index.html has no #root');
createRoot(root).render(
  <StrictMode>
    <MantineProvider theme={theme} cssVariablesResolver={contrast} defaultColorScheme="auto">
      <QueryClientProvider client={queries}>
        <BrowserRouter basename="/admin">
          <AuthProvider>
            <App />
          </AuthProvider>
        </BrowserRouter>
      </QueryClientProvider>
    </MantineProvider>
  </StrictMode>,
);

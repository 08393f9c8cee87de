import { Center, Loader } from '@mantine/core';
import { lazy, Suspense } from 'react';
import { Navigate, Route, Routes } from 'react-router';
import { useAuth } from './auth.tsx';
import { LoginPage } from './pages/Login.tsx';
import { Shell } from './Shell.tsx';

// Each page behind the sign-in is loaded when it is opened: the sign-in page carries none of them
// (the dashboard's charts are most of the panel's weight).
const DashboardPage = lazy(() =>
  import('./pages/Dashboard.tsx').then((module) => ({ default: module.DashboardPage })),
);
const UsersPage = lazy(() =>
  import('./pages/Users.tsx').then((module) => ({ default: module.UsersPage })),
);
const UserPage = lazy(() =>
  import('./pages/User.tsx').then((module) => ({ default: module.UserPage })),
);
const GenerationsPage = lazy(() =>
  import('./pages/Generations.tsx').then((module) => ({ default: module.GenerationsPage })),
);
const PaymentsPage = lazy(() =>
  import('./pages/Payments.tsx').then((module) => ({ default: module.PaymentsPage })),
);
const BroadcastsPage = lazy(() =>
  import('./pages/Broadcasts.tsx').then((module) => ({ default: module.BroadcastsPage })),
);
const BroadcastComposePage = lazy(() =>
  import('./pages/BroadcastCompose.tsx').then((module) => ({
    default: module.BroadcastComposePage,
  })),
);
const BroadcastPage = lazy(() =>
  import('./pages/Broadcast.tsx').then((module) => ({ default: module.BroadcastPage })),
);
const ModelsPage = lazy(() =>
  import('./pages/Models.tsx').then((module) => ({ default: module.ModelsPage })),
);
const ModelPage = lazy(() =>
  import('./pages/Model.tsx').then((module) => ({ default: module.ModelPage })),
);
const NewModelPage = lazy(() =>
  import('./pages/Model.tsx').then((module) => ({ default: module.NewModelPage })),
);
const SettingsPage = lazy(() =>
  import('./pages/Settings.tsx').then((module) => ({ default: module.SettingsPage })),
);
const AuditPage = lazy(() =>
  import('./pages/Audit.tsx').then((module) => ({ default: module.AuditPage })),
);

function Loading() {
  return (
    <Center h="100vh">
      <Loader aria-label="Loading" />
    </Center>
  );
}

export function App() {
  const { me } = useAuth();
  if (me === null) return <Loading />;
  if (me === false) return <LoginPage />;
  return (
    <Shell me={me}>
      <Suspense fallback={<Loading />}>
        <Routes>
          <Route path="/" element={<Navigate to="/dashboard" replace />} />
          <Route path="/login" element={<Navigate to="/dashboard" replace />} />
          <Route path="/dashboard" element={<DashboardPage />} />
          <Route path="/users" element={<UsersPage />} />
          <Route path="/users/:telegramId" element={<UserPage />} />
          <Route path="/generations" element={<GenerationsPage />} />
          <Route path="/payments" element={<PaymentsPage />} />
          <Route path="/broadcasts" element={<BroadcastsPage />} />
          <Route path="/broadcasts/new" element={<BroadcastComposePage />} />
          <Route path="/broadcasts/:broadcastId" element={<BroadcastPage />} />
          <Route path="/models" element={<ModelsPage />} />
          <Route path="/models/new" element={<NewModelPage />} />
          <Route path="/models/:key" element={<ModelPage />} />
          <Route path="/settings" element={<SettingsPage />} />
          <Route path="/audit" element={<AuditPage />} />
          <Route path="*" element={<Navigate to="/dashboard" replace />} />
        </Routes>
      </Suspense>
    </Shell>
  );
}

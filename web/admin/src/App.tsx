import { Center, Loader } from '@mantine/core';
import { lazy, Suspense } from 'react';
import { Navigate, Route, Routes } from 'react-router';
import { useAuth } from './auth.tsx';
import { AuditPage } from './pages/Audit.tsx';
import { LoginPage } from './pages/Login.tsx';
import { UserPage } from './pages/User.tsx';
import { UsersPage } from './pages/Users.tsx';
import { Shell } from './Shell.tsx';

// The charts are most of the panel's weight: loaded when the dashboard is opened, not before.
const DashboardPage = lazy(() =>
  import('./pages/Dashboard.tsx').then((module) => ({ default: module.DashboardPage })),
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
      <Routes>
        <Route path="/" element={<Navigate to="/dashboard" replace />} />
        <Route path="/login" element={<Navigate to="/dashboard" replace />} />
        <Route
          path="/dashboard"
          element={
            <Suspense fallback={<Loading />}>
              <DashboardPage />
            </Suspense>
          }
        />
        <Route path="/users" element={<UsersPage />} />
        <Route path="/users/:telegramId" element={<UserPage />} />
        <Route path="/audit" element={<AuditPage />} />
        <Route path="*" element={<Navigate to="/dashboard" replace />} />
      </Routes>
    </Shell>
  );
}

import { Center, Loader } from '@mantine/core';
import { Navigate, Route, Routes } from 'react-router';
import { useAuth } from './auth.tsx';
import { AuditPage } from './pages/Audit.tsx';
import { LoginPage } from './pages/Login.tsx';
import { UserPage } from './pages/User.tsx';
import { UsersPage } from './pages/Users.tsx';
import { Shell } from './Shell.tsx';

export function App() {
  const { me } = useAuth();
  if (me === null) {
    return (
      <Center h="100vh">
        <Loader aria-label="Loading" />
      </Center>
    );
  }
  if (me === false) return <LoginPage />;
  return (
    <Shell me={me}>
      <Routes>
        <Route path="/" element={<Navigate to="/users" replace />} />
        <Route path="/login" element={<Navigate to="/users" replace />} />
        <Route path="/users" element={<UsersPage />} />
        <Route path="/users/:telegramId" element={<UserPage />} />
        <Route path="/audit" element={<AuditPage />} />
        <Route path="*" element={<Navigate to="/users" replace />} />
      </Routes>
    </Shell>
  );
}

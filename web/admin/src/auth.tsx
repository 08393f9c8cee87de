import { useQuery, useQueryClient } from '@tanstack/react-query';
import { createContext, type ReactNode, useCallback, useContext, useMemo, useState } from 'react';
import { type Api, ApiError, createApi, dataOf, type Ok } from '../../shared/api.ts';

export type Me = Ok<'/api/v1/admin/auth/me', 'get'>;

/**
 * Who operates the panel. An operator signed in with Telegram holds the API's session cookie
 * (HttpOnly: no script here can read it). An ADMIN_TOKENS token has no session to exchange it for,
 * so it is kept in sessionStorage: it lives as long as this tab, is never shared with other tabs
 * or written to disk the way localStorage is, and the panel's CSP admits no script but its own.
 */
const TOKEN_KEY = 'admin-token';

function storedToken(): string | null {
  return window.sessionStorage.getItem(TOKEN_KEY);
}

interface Auth {
  api: Api;
  /** null while unknown; false when no one is signed in. */
  me: Me | false | null;
  signInWithToken(token: string): Promise<void>;
  signInWithTelegram(fields: Record<string, string>): Promise<void>;
  signOut(): Promise<void>;
}

const AuthContext = createContext<Auth | null>(null);

export function AuthProvider({ children }: { children: ReactNode }) {
  const queries = useQueryClient();
  const [token, setToken] = useState<string | null>(storedToken);
  const api = useMemo(() => createApi(() => (token === null ? null : `Bearer ${token}`)), [token]);

  const me = useQuery({
    queryKey: ['me', token],
    queryFn: async (): Promise<Me | false> => {
      const answer = await api.GET('/api/v1/admin/auth/me');
      if (answer.response.status === 401) return false;
      return dataOf(answer);
    },
  });

  const signInWithToken = useCallback(async (candidate: string) => {
    const probe = createApi(() => `Bearer ${candidate}`);
    dataOf(await probe.GET('/api/v1/admin/auth/me'));
    window.sessionStorage.setItem(TOKEN_KEY, candidate);
    setToken(candidate);
  }, []);

  const signInWithTelegram = useCallback(
    async (fields: Record<string, string>) => {
      const body = {
        id: Number(fields.id),
        auth_date: Number(fields.auth_date),
        hash: fields.hash ?? '',
        ...(fields.first_name ? { first_name: fields.first_name } : {}),
        ...(fields.last_name ? { last_name: fields.last_name } : {}),
        ...(fields.username ? { username: fields.username } : {}),
        ...(fields.photo_url ? { photo_url: fields.photo_url } : {}),
      };
      dataOf(await createApi(() => null).POST('/api/v1/admin/auth/telegram', { body }));
      await queries.invalidateQueries({ queryKey: ['me'] });
    },
    [queries],
  );

  const signOut = useCallback(async () => {
    if (token === null) {
      dataOf(await api.POST('/api/v1/admin/auth/logout', { body: {} }));
    }
    window.sessionStorage.removeItem(TOKEN_KEY);
    // Nothing the operator saw stays in memory; the panel knows at once that no one is signed in.
    queries.removeQueries({ predicate: (query) => query.queryKey[0] !== 'me' });
    queries.setQueryData(['me', null], false);
    setToken(null);
  }, [api, token, queries]);

  const value: Auth = {
    api,
    me: me.data ?? (me.error instanceof ApiError ? false : null),
    signInWithToken,
    signInWithTelegram,
    signOut,
  };
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): Auth {
  const auth = useContext(AuthContext);
  if (!auth) throw new Error('useAuth outside AuthProvider');
  return auth;
}

/** The API client of the signed-in operator. */
export function useApi(): Api {
  return useAuth().api;
}

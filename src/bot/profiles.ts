import type { User } from 'grammy/types';
import type { Language } from '../locales/index.ts';
import type { BotApi, SyncedUser } from './api.ts';
import type { Profile } from './context.ts';

/**
 * Users as the API knows them, kept a minute per process: every update needs the user's language
 * and whether they are banned, and one sync a minute per active user (which also records their
 * names and that they were seen) is what that costs.
 */
export class UserProfiles {
  private readonly cache = new Map<number, { at: number; profile: Profile }>();

  constructor(
    private readonly api: BotApi,
    private readonly ttlMs = 60_000,
    private readonly maxEntries = 100_000,
  ) {}

  async of(from: User, referralCode?: string): Promise<Profile> {
    const cached = this.cache.get(from.id);
    if (cached && referralCode === undefined && Date.now() - cached.at < this.ttlMs) {
      return cached.profile;
    }
    const synced = await this.api.syncUser({
      telegram_id: from.id,
      first_name: from.first_name,
      last_name: from.last_name ?? null,
      username: from.username ?? null,
      language_code: from.language_code ?? null,
      is_premium: from.is_premium ?? null,
      ...(referralCode === undefined ? {} : { referral_code: referralCode }),
    });
    return this.remember(profileOf(synced));
  }

  /**
   * Remembers the model and parameters a user chose, for their next prompt: stored through the
   * API (so every bot process and the Mini App see it), and in this process's copy at once.
   */
  async rememberChoice(
    ctx: { profile: Profile | null },
    model: string,
    parameters: Record<string, string>,
  ): Promise<void> {
    const profile = ctx.profile;
    if (!profile) return;
    profile.preferences = {
      model,
      parameters: { ...profile.preferences.parameters, [model]: { ...parameters } },
    };
    this.remember(profile);
    this.remember(
      profileOf(
        await this.api.updateUser(profile.telegramId, { preferences: profile.preferences }),
      ),
    );
  }

  /** Stores the language the user chose. */
  async chooseLanguage(telegramId: number, language: Language): Promise<Profile> {
    return this.remember(profileOf(await this.api.updateUser(telegramId, { language })));
  }

  remember(profile: Profile): Profile {
    if (this.cache.size >= this.maxEntries) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    this.cache.set(profile.telegramId, { at: Date.now(), profile });
    return profile;
  }
}

/** The sync answer as a profile. */
export function profileOf(user: SyncedUser): Profile {
  return {
    telegramId: user.telegram_id,
    language: user.language ?? null,
    banned: user.banned ? { reason: user.banned.reason ?? '' } : null,
    preferences: user.preferences,
  };
}

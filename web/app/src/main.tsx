import {
  QueryClient,
  QueryClientProvider,
  useInfiniteQuery,
  useMutation,
  useQuery,
  useQueryClient,
} from '@tanstack/react-query';
import { type Dispatch, type SetStateAction, StrictMode, useEffect, useRef, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { type Api, createApi, dataOf, type Ok } from '../../shared/api.ts';
import { type Translate, textsFor } from './i18n.ts';
import { applyTheme, type Launch, readLaunch } from './telegram.ts';
import { Wallet } from './wallet.tsx';
import './style.css';

/**
 * The Mini App: a gallery of the user's generations and a composer, in Telegram's theme and the
 * user's language, as the user authenticated by Telegram's signed initData (`tma`).
 */

type Generation = Ok<'/api/v1/generations/{id}', 'get'>;
type Model = Ok<'/api/v1/models', 'get'>['models'][number];

const PAGE_SIZE = 12;
/** A phone shows two tiles a row; the first row loads before everything else. */
const EAGER_TILES = 2;
const isActive = (g: Generation) => g.status === 'queued' || g.status === 'running';

/** A reference as POST /generations takes it back: an upload is named `upload:<name>`. */
const referenceValue = (reference: Generation['references'][number]) =>
  reference.kind === 'upload' ? `upload:${reference.value}` : reference.value;

function Gallery({
  api,
  launch,
  t,
  onUseAsReference,
}: {
  api: Api;
  launch: Launch;
  t: Translate;
  onUseAsReference: (upload: Upload) => void;
}) {
  const [viewing, setViewing] = useState<Generation | null>(null);
  const queries = useQueryClient();
  const regenerate = useMutation({
    mutationFn: async (generation: Generation) =>
      dataOf(
        await api.POST('/api/v1/generations', {
          params: { header: { 'idempotency-key': crypto.randomUUID() } },
          body: {
            telegram_id: launch.telegramId,
            model: generation.model,
            prompt: generation.prompt,
            parameters: generation.parameters,
            references: generation.references.map(referenceValue),
          },
        }),
      ),
    onSuccess: () => {
      setViewing(null);
      void queries.invalidateQueries({ queryKey: ['generations'] });
    },
  });
  // The result's bytes, fetched from the API, stored again as the user's own upload.
  const useAsReference = useMutation({
    mutationFn: async (url: string) =>
      uploadImage(api, launch.telegramId, await (await fetch(url)).blob()),
    onSuccess: (upload) => {
      setViewing(null);
      onUseAsReference(upload);
    },
  });
  const pages = useInfiniteQuery({
    queryKey: ['generations'],
    initialPageParam: undefined as string | undefined,
    queryFn: async ({ pageParam }) =>
      dataOf(
        await api.GET('/api/v1/users/{telegram_id}/generations', {
          params: {
            path: { telegram_id: launch.telegramId },
            query: { limit: PAGE_SIZE, ...(pageParam ? { cursor: pageParam } : {}) },
          },
        }),
      ),
    getNextPageParam: (last) => last.next_cursor ?? undefined,
    // Live status: while anything is on its way, look again.
    refetchInterval: (query) =>
      query.state.data?.pages.some((page) => page.generations.some(isActive)) ? 1500 : false,
  });
  const sentinel = useRef<HTMLDivElement>(null);
  const { hasNextPage, isFetchingNextPage, fetchNextPage } = pages;
  useEffect(() => {
    const element = sentinel.current;
    if (!element || !hasNextPage) return;
    const observer = new IntersectionObserver((entries) => {
      if (entries.some((entry) => entry.isIntersecting) && !isFetchingNextPage) {
        void fetchNextPage();
      }
    });
    observer.observe(element);
    return () => observer.disconnect();
  }, [hasNextPage, isFetchingNextPage, fetchNextPage]);

  if (pages.isPending) return <p className="note">{t('app-loading')}</p>;
  if (pages.isError)
    return <p className="note">{t('app-error', { detail: pages.error.message })}</p>;
  const generations = pages.data.pages.flatMap((page) => page.generations);
  if (generations.length === 0) return <p className="note">{t('app-gallery-empty')}</p>;
  return (
    <>
      <ul className="gallery" aria-label={t('app-tab-gallery')}>
        {generations.map((generation, index) => {
          const image = generation.results[0];
          // The first screenful loads at once (the first is the largest paint): lazy images wait
          // for layout, which costs a phone a round trip before the gallery shows anything.
          const aboveTheFold = index < EAGER_TILES;
          return (
            <li key={generation.id} className="tile" data-status={generation.status}>
              {image ? (
                <button type="button" onClick={() => setViewing(generation)}>
                  <img
                    src={image.url}
                    alt={generation.prompt}
                    loading={aboveTheFold ? 'eager' : 'lazy'}
                    fetchPriority={index === 0 ? 'high' : 'auto'}
                  />
                </button>
              ) : (
                <span className="status">{t(`app-status-${generation.status}`)}</span>
              )}
            </li>
          );
        })}
      </ul>
      <div ref={sentinel} />
      {isFetchingNextPage && <p className="note">{t('app-loading')}</p>}
      {viewing?.results[0] && (
        <div className="viewer" role="dialog" aria-label={viewing.prompt}>
          <img src={viewing.results[0].url} alt={viewing.prompt} />
          <p>{viewing.prompt}</p>
          {(regenerate.error ?? useAsReference.error) && (
            <p className="error">
              {t('app-error', {
                detail: (regenerate.error ?? useAsReference.error)?.message ?? '',
              })}
            </p>
          )}
          <div className="row">
            <button
              type="button"
              className="button"
              disabled={regenerate.isPending}
              onClick={() => regenerate.mutate(viewing)}
            >
              {t('button-regenerate')}
            </button>
            <button
              type="button"
              className="button"
              disabled={useAsReference.isPending}
              onClick={() => {
                const url = viewing.results[0]?.url;
                if (url) useAsReference.mutate(url);
              }}
            >
              {t('app-use-as-reference')}
            </button>
            <a className="button" href={viewing.results[0].url} download>
              {t('app-download')}
            </a>
            <button type="button" className="button" onClick={() => setViewing(null)}>
              {t('app-close')}
            </button>
          </div>
        </div>
      )}
    </>
  );
}

interface Upload {
  reference: string;
  preview: string;
}

/** Stores an image as the user's reference (POST /users/{id}/uploads). */
async function uploadImage(api: Api, telegramId: number, image: Blob): Promise<Upload> {
  const stored = dataOf(
    await api.POST('/api/v1/users/{telegram_id}/uploads', {
      params: { path: { telegram_id: telegramId } },
      body: image as never,
      bodySerializer: (body: unknown) => body as Blob,
      headers: { 'content-type': image.type || 'application/octet-stream' },
    }),
  );
  return { reference: stored.reference, preview: URL.createObjectURL(image) };
}

function Composer({
  api,
  launch,
  t,
  onSubmitted,
  uploads,
  setUploads,
}: {
  api: Api;
  launch: Launch;
  t: Translate;
  onSubmitted: () => void;
  /** Kept by the app: the gallery's "use as reference" adds to them. */
  uploads: Upload[];
  setUploads: Dispatch<SetStateAction<Upload[]>>;
}) {
  const telegramId = launch.telegramId;
  const models = useQuery({
    queryKey: ['models'],
    queryFn: async () => dataOf(await api.GET('/api/v1/models')).models,
  });
  const [modelKey, setModelKey] = useState<string | null>(null);
  // A model no provider can serve now is shown greyed out and is never the default choice.
  const model: Model | undefined =
    models.data?.find((m) => m.key === modelKey) ??
    models.data?.find((m) => m.available) ??
    models.data?.[0];
  const [parameters, setParameters] = useState<Record<string, string>>({});
  const [prompt, setPrompt] = useState('');
  // One key per request the user means: a retry of it is charged once.
  const [idempotencyKey, setIdempotencyKey] = useState(() => crypto.randomUUID());
  const chosen = Object.fromEntries(
    (model?.parameters ?? []).map((p) => [p.name, parameters[p.name] ?? p.default]),
  );
  const quote = useQuery({
    queryKey: ['quote', model?.key, chosen],
    enabled: model !== undefined,
    queryFn: async () =>
      dataOf(
        await api.POST('/api/v1/generations/quote', {
          body: { telegram_id: telegramId, model: model?.key ?? '', parameters: chosen },
        }),
      ),
  });
  const upload = useMutation({
    mutationFn: (file: File) => uploadImage(api, telegramId, file),
    onSuccess: (stored) => setUploads((current) => [...current, stored]),
  });
  const submit = useMutation({
    mutationFn: async () =>
      dataOf(
        await api.POST('/api/v1/generations', {
          params: { header: { 'idempotency-key': idempotencyKey } },
          body: {
            telegram_id: telegramId,
            model: model?.key ?? '',
            prompt,
            parameters: chosen,
            references: uploads.slice(0, model?.max_references ?? 0).map((u) => u.reference),
          },
        }),
      ),
    onSuccess: () => {
      setIdempotencyKey(crypto.randomUUID());
      setPrompt('');
      setUploads([]);
      onSubmitted();
    },
  });

  if (models.isPending) return <p className="note">{t('app-loading')}</p>;
  if (models.isError || !model) {
    return <p className="note">{t('app-error', { detail: models.error?.message ?? '' })}</p>;
  }
  const price = quote.data
    ? quote.data.payment_method === 'trial'
      ? t('price-free', { left: quote.data.trial.remaining })
      : t('price-credits', { credits: quote.data.price_credits })
    : '…';
  const failure = submit.error ?? upload.error ?? quote.error;
  return (
    <form
      className="composer"
      onSubmit={(event) => {
        event.preventDefault();
        submit.mutate();
      }}
    >
      <label>
        {t('models-title')}
        <select
          value={model.key}
          onChange={(event) => {
            setModelKey(event.target.value);
            setParameters({});
            setUploads((current) =>
              current.slice(
                0,
                models.data.find((m) => m.key === event.target.value)?.max_references ?? 0,
              ),
            );
          }}
        >
          {models.data.map((m) => (
            <option key={m.key} value={m.key} disabled={!m.available}>
              {m.available ? m.name : t('app-model-unavailable', { model: m.name })}
            </option>
          ))}
        </select>
      </label>
      {model.parameters.map((parameter) => (
        <label key={parameter.name}>
          {parameter.label}
          <select
            value={chosen[parameter.name]}
            onChange={(event) =>
              setParameters((current) => ({ ...current, [parameter.name]: event.target.value }))
            }
          >
            {parameter.values.map((value) => (
              <option key={value}>{value}</option>
            ))}
          </select>
        </label>
      ))}
      <textarea
        aria-label={t('app-prompt-placeholder')}
        placeholder={t('app-prompt-placeholder')}
        maxLength={model.max_prompt_length}
        value={prompt}
        onChange={(event) => setPrompt(event.target.value)}
        rows={4}
      />
      {model.max_references > 0 && (
        <div className="uploads">
          {uploads.map((u) => (
            <figure key={u.reference}>
              <img src={u.preview} alt="" />
              <button
                type="button"
                onClick={() => setUploads((current) => current.filter((c) => c !== u))}
              >
                {t('app-remove-image')}
              </button>
            </figure>
          ))}
          {uploads.length < model.max_references && (
            <label className="button">
              {upload.isPending
                ? t('app-uploading')
                : t('app-add-images', { count: uploads.length, max: model.max_references })}
              <input
                type="file"
                accept="image/png,image/jpeg,image/webp,image/gif"
                hidden
                disabled={upload.isPending}
                onChange={(event) => {
                  const file = event.target.files?.[0];
                  if (file) upload.mutate(file);
                  event.target.value = '';
                }}
              />
            </label>
          )}
        </div>
      )}
      <p className="quote">{t('app-quote', { price })}</p>
      {failure && <p className="error">{t('app-error', { detail: failure.message })}</p>}
      <button
        type="submit"
        className="button primary"
        disabled={submit.isPending || upload.isPending || !model.available}
      >
        {quote.data?.payment_method === 'trial'
          ? t('button-start-free')
          : t('button-start-credits', { credits: quote.data?.price_credits ?? '…' })}
      </button>
    </form>
  );
}

/** The tabs and their labels' text keys. */
const TABS = {
  gallery: 'app-tab-gallery',
  create: 'app-tab-create',
  wallet: 'app-tab-wallet',
} as const;

function MiniApp({ launch }: { launch: Launch }) {
  const [api] = useState(() => createApi(() => `tma ${launch.initData}`));
  const { t } = textsFor(launch.languageCode);
  const [tab, setTab] = useState<keyof typeof TABS>('gallery');
  // The balance tab asks the API only once it is first opened: the gallery's images load first.
  const [walletOpened, setWalletOpened] = useState(false);
  if (tab === 'wallet' && !walletOpened) setWalletOpened(true);
  const [uploads, setUploads] = useState<Upload[]>([]);
  const queries = useQueryClient();
  return (
    <main>
      <nav className="tabs">
        {(Object.keys(TABS) as (keyof typeof TABS)[]).map((name) => (
          <button key={name} type="button" aria-pressed={tab === name} onClick={() => setTab(name)}>
            {t(TABS[name])}
          </button>
        ))}
      </nav>
      {/* Both stay mounted: the composer keeps what was chosen while the gallery is looked at. */}
      <section hidden={tab !== 'gallery'}>
        <Gallery
          api={api}
          launch={launch}
          t={t}
          onUseAsReference={(upload) => {
            setUploads((current) => [...current, upload]);
            setTab('create');
          }}
        />
      </section>
      <section hidden={tab !== 'create'}>
        <Composer
          api={api}
          launch={launch}
          t={t}
          uploads={uploads}
          setUploads={setUploads}
          onSubmitted={() => {
            void queries.invalidateQueries({ queryKey: ['generations'] });
            // Submitting spent credits or a free generation.
            void queries.invalidateQueries({ queryKey: ['balance'] });
            void queries.invalidateQueries({ queryKey: ['trial'] });
            setTab('gallery');
          }}
        />
      </section>
      <section hidden={tab !== 'wallet'}>
        {walletOpened && <Wallet api={api} launch={launch} t={t} />}
      </section>
    </main>
  );
}

function OutsideTelegram() {
  // No user, so no language of theirs: the browser's.
  const { t } = textsFor(navigator.language);
  return (
    <main className="note">
      <h1>{t('app-outside-telegram-title')}</h1>
      <p>{t('app-outside-telegram')}</p>
    </main>
  );
}

const launch = readLaunch();
if (launch) {
  applyTheme(launch.theme);
  document.documentElement.lang = textsFor(launch.languageCode).language;
}
const queryClient = new QueryClient({ defaultOptions: { queries: { retry: 1 } } });
const root = document.getElementById('root');
if (!root) throw new Error('index.html has no #root');
createRoot(root).render(
  <StrictMode>
    <QueryClientProvider client={queryClient}>
      {launch ? <MiniApp launch={launch} /> : <OutsideTelegram />}
    </QueryClientProvider>
  </StrictMode>,
);

# Русские тексты бота и доставок. Ключи и плейсхолдеры совпадают с en.ftl (это проверяет тест).

## Commands (setMyCommands)
command-start = Главное меню
command-generate = Создать изображение
command-balance = Баланс и бесплатные генерации
command-topup = Купить кредиты за Telegram Stars
command-history = Мои изображения
command-referral = Пригласить друзей
command-language = Язык
command-help = Помощь и цены
# The button beside the message field that opens the Mini App (setChatMenuButton)
menu-button-app = 🖼 Приложение

## Main menu
start-greeting =
    Привет, { $name }! 👋
    Пришлите описание картинки — я её нарисую. Пришлите фото с подписью, чтобы изменить его.
menu-title = Что будем делать?
button-generate = 🎨 Создать
button-balance = 💰 Баланс
button-topup = ⭐ Пополнить
button-history = 🖼 Мои изображения
button-referral = 👥 Пригласить друзей
button-language = 🌐 Язык
button-help = ❓ Помощь
button-back = ⬅️ Назад
button-menu = 🏠 Меню

## Generating
generate-ask-prompt = ✍️ Опишите картинку одним сообщением или пришлите фото с подписью, чтобы изменить его.
generate-card =
    <b>{ $model }</b> · { $price }
    ⏱ { $duration }
generate-card-prompt = Запрос: <i>{ $prompt }</i>
generate-card-references = { $count ->
    [one] 🖼 { $count } изображение для изменения
    [few] 🖼 { $count } изображения для изменения
   *[other] 🖼 { $count } изображений для изменения
}
price-free = бесплатно (осталось { $left })
price-credits = { $credits } кредитов
duration-seconds = около { $seconds } с
duration-unknown = от нескольких секунд до пары минут
button-model = 🤖 Модель: { $model }
button-parameter = { $label }: { $value }
button-start-free = 🚀 Начать — бесплатно
button-start-credits = 🚀 Начать — { $credits } кредитов
models-title = Выберите модель:
model-line = { $name } — { $price }
parameter-title = { $label }:
generate-started = ⏳ В очереди
generate-already-started = Этот запрос уже выполняется.
generate-draft-expired = Запрос устарел. Пришлите описание ещё раз.
generate-prompt-too-long = Описание слишком длинное: не больше { $max } символов.
generate-needs-image = Этому инструменту нужно фото: пришлите его.
tools-title = Что сделать с этим фото?

## Deliveries (written by the worker)
delivery-status-running = 🎨 Рисую…
delivery-status-done = ✅ Готово
delivery-result-caption = { $model } · { $cost }
delivery-cost-free = бесплатная генерация
delivery-cost-credits = { $credits } кредитов
delivery-failed = 😔 Не удалось создать изображение: { $reason }
delivery-refunded-credits = { $credits } кредитов возвращены на баланс.
delivery-refunded-trial = Бесплатная генерация возвращена.
failure-reason-timeout = это заняло слишком много времени.
failure-reason-refused = сервис отклонил запрос (часто это фильтр содержимого). Попробуйте другие слова.
failure-reason-unavailable = сервис изображений сейчас недоступен. Попробуйте через несколько минут.
failure-reason-bad-input = сервис не смог использовать этот запрос или изображение.
failure-reason-unknown = что-то пошло не так на нашей стороне.
button-regenerate = 🔁 Ещё раз
button-edit = ✏️ Изменить
button-original = 📎 Оригинал
edit-ask-prompt = ✏️ Напишите, что изменить на этом изображении.

## Balance and profile
balance-text =
    💰 Баланс: <b>{ $balance }</b> кредитов
    🎁 Бесплатных генераций осталось: <b>{ $trial }</b>
balance-buys = Этого хватит примерно на { $count } изображений с { $model }.

## Top up
topup-title = Выберите пакет. Оплата — Telegram Stars ⭐
topup-package = { $credits } кредитов — { $stars } ⭐
invoice-title = { $credits } кредитов
invoice-description = { $credits } кредитов для генерации изображений.
precheckout-invalid = Это предложение больше не действует. Откройте меню пополнения ещё раз.
payment-confirmed =
    ✅ Оплата получена: +{ $credits } кредитов.
    Баланс: <b>{ $balance }</b> кредитов.
payment-refunded = ↩️ Платёж возвращён; списано { $credits } кредитов.
referral-earned = 🎉 Ваш друг пополнил баланс: вы получили <b>{ $credits }</b> кредитов.

## History
history-empty = У вас пока нет изображений. Пришлите описание, чтобы создать первое.
history-title = Ваши изображения (сначала новые):
history-item = { $status } { $model }: { $prompt }
history-status-succeeded = ✅
history-status-failed = ❌
history-status-active = ⏳
button-older = Раньше ➡️
button-newer = ⬅️ Позже
history-no-image = У этого запроса нет изображения.

## Referral
referral-text =
    👥 Приглашайте друзей по своей ссылке:
    { $link }
    Вы получаете { $percent }% от каждого их пополнения.
    Пришло: <b>{ $count }</b> · Заработано: <b>{ $earned }</b> кредитов

## Language
language-title = Выберите язык:
language-changed = Язык: русский 🇷🇺

# Each language by its own name, the same in every file.
language-name-uz = 🇺🇿 O'zbekcha
language-name-ru = 🇷🇺 Русский
language-name-en = 🇬🇧 English

## Help
help-text =
    Пришлите описание, чтобы создать изображение, или фото с подписью, чтобы изменить его. Фото без подписи открывает инструменты.
    Цены:
help-model-line = • { $name }: { $price }
help-support = Вопросы: { $contact }

## Errors
error-insufficient =
    Недостаточно кредитов: нужно { $required }, на балансе { $balance }.
error-too-many-active = { $active ->
    [one] У вас уже { $active } изображение в работе. Дождитесь, пока оно будет готово.
    [few] У вас уже { $active } изображения в работе. Дождитесь, пока одно будет готово.
   *[other] У вас уже { $active } изображений в работе. Дождитесь, пока одно будет готово.
}
error-unavailable = Сервис занят. Попробуйте через минуту.
error-unexpected = Что-то пошло не так. Попробуйте через минуту.
error-banned = ⛔️ Доступ заблокирован. Причина: { $reason }
error-throttled = Слишком быстро — подождите несколько секунд.
error-invalid = Такой запрос выполнить нельзя: { $details }

## Operators' notices (to ADMIN_CHAT_ID, in DEFAULT_LANGUAGE)
notice-provider-balance-low =
    ⚠️ { $provider }: баланс { $balance } — ниже минимума { $minimum }.
    Его модели недоступны, пока счёт не пополнен.
notice-provider-balance-recovered =
    ✅ { $provider }: баланс снова { $balance } (минимум { $minimum }). Его модели доступны.
notice-daily-report =
    📊 Отчёт за { $date } (UTC)
    Пользователи: { $users_new } новых, { $users_active } активных, { $users_total } всего
    Генерации: { $generations } ({ $succeeded } готово, { $failed } с ошибкой; успешных { $success_rate })
    Время до результата: медиана { $median }, 95% за { $ninety_fifth }
    Звёзды: { $stars } от { $payments } платежей
    Кредиты: { $credits_sold } продано, { $credits_spent } потрачено, { $credits_refunded } возвращено, { $credits_given_free } выдано бесплатно
    Бесплатных генераций: { $free_generations }
    Рефералы: { $referred_users } новых пользователей, { $referral_credits } бонусных кредитов
notice-seconds = { $seconds } с
notice-none = —
notice-broadcast-completed =
    📣 Рассылка #{ $id } завершена ({ $total } получателей): { $sent } отправлено, { $blocked } заблокировали бота, { $failed } с ошибкой.
notice-broadcast-cancelled =
    📣 Рассылка #{ $id } отменена ({ $total } получателей): { $sent } отправлено, { $blocked } заблокировали бота, { $failed } с ошибкой, { $remaining } не отправлено.

## The Mini App (web/app)
app-outside-telegram-title = Откройте это в Telegram
app-outside-telegram = Это приложение работает внутри Telegram: откройте его кнопкой меню бота.
app-tab-gallery = 🖼 Мои изображения
app-tab-create = 🎨 Создать
app-loading = Загрузка…
app-model-unavailable = { $model } (сейчас недоступна)
app-error = Что-то пошло не так: { $detail }
app-gallery-empty = У вас пока нет изображений. Создайте первое!
app-close = Закрыть
app-download = Скачать
app-prompt-placeholder = Опишите картинку, которую хотите
app-add-images = Добавить фото ({ $count }/{ $max })
app-remove-image = Убрать
app-uploading = Загрузка…
app-quote = Цена: { $price }
app-status-queued = ⏳ В очереди
app-status-running = 🎨 Рисую…
app-status-succeeded = ✅ Готово
app-status-failed = ❌ Не получилось
app-use-as-reference = Использовать как образец
app-tab-wallet = 💰 Баланс
app-balance = Баланс: { $balance } кредитов
app-free-left = Бесплатных генераций осталось: { $trial }
app-topup-title = Пополнить через Telegram Stars ⭐
app-payment-waiting = Оплата получена. Начисляем кредиты…
app-payment-credited = ✅ Кредиты начислены. Баланс: { $balance } кредитов.
app-payment-pending = Платёж обрабатывается: кредиты появятся здесь, как только он пройдёт.
app-payment-failed = Платёж не прошёл. Деньги не списаны.
app-payment-slow = Кредиты ещё не пришли. Они будут начислены, как только Telegram подтвердит платёж.
app-payment-unsupported = Эта версия Telegram не умеет оплачивать отсюда: обновите Telegram или используйте /topup в боте.
app-referral-title = 👥 Пригласите друзей
app-referral-terms = Вы получаете { $percent }% от каждого их пополнения. Пришло: { $count } · Заработано: { $earned } кредитов
app-referral-share = Поделиться ссылкой
app-referral-share-text = Создавайте изображения с ИИ прямо в Telegram. Заходите по моей ссылке!
app-referral-no-link = Ссылка-приглашение сейчас недоступна. Попробуйте /referral в боте.

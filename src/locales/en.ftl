# English texts of the bot and of deliveries. Every key exists in uz.ftl and ru.ftl too, with the
# same placeholders (a test checks). Texts are HTML (parse_mode HTML): user content is escaped
# before it is put in a placeholder.

## Commands (setMyCommands)
command-start = Main menu
command-generate = Create an image
command-balance = Balance and free generations
command-topup = Buy credits with Telegram Stars
command-history = My images
command-referral = Invite friends
command-language = Language
command-help = Help and prices
# The button beside the message field that opens the Mini App (setChatMenuButton)
menu-button-app = 🖼 App

## Main menu
start-greeting =
    Hi, { $name }! 👋
    Send me a description of the picture you want and I will draw it. Send a photo with a caption to edit it.
menu-title = What would you like to do?
button-generate = 🎨 Create
button-balance = 💰 Balance
button-topup = ⭐ Top up
button-history = 🖼 My images
button-referral = 👥 Invite friends
button-language = 🌐 Language
button-help = ❓ Help
button-back = ⬅️ Back
button-menu = 🏠 Menu

## Generating
generate-ask-prompt = ✍️ Describe the picture you want in one message, or send a photo with a caption to edit it.
generate-card =
    <b>{ $model }</b> · { $price }
    ⏱ { $duration }
generate-card-prompt = Prompt: <i>{ $prompt }</i>
generate-card-references = { $count ->
    [one] 🖼 1 image to edit
   *[other] 🖼 { $count } images to edit
}
price-free = free ({ $left } free left)
price-credits = { $credits } credits
duration-seconds = about { $seconds } s
duration-unknown = a few seconds to a few minutes
button-model = 🤖 Model: { $model }
button-parameter = { $label }: { $value }
button-start-free = 🚀 Start — free
button-start-credits = 🚀 Start — { $credits } credits
models-title = Choose a model:
model-line = { $name } — { $price }
parameter-title = { $label }:
generate-started = ⏳ Queued
generate-already-started = This one is already on its way.
generate-draft-expired = This request has expired. Send the prompt again.
generate-prompt-too-long = The description is too long: at most { $max } characters.
generate-needs-image = This tool needs a photo: send one.
tools-title = What should I do with this photo?

## Deliveries (written by the worker)
delivery-status-running = 🎨 Drawing…
delivery-status-done = ✅ Done
delivery-result-caption = { $model } · { $cost }
delivery-cost-free = free generation
delivery-cost-credits = { $credits } credits
delivery-failed = 😔 The image could not be made: { $reason }
delivery-refunded-credits = The { $credits } credits were given back to your balance.
delivery-refunded-trial = Your free generation was given back.
failure-reason-timeout = it took too long.
failure-reason-refused = the service refused this request (often the content filter). Try other words.
failure-reason-unavailable = the image service is unavailable right now. Try again in a few minutes.
failure-reason-bad-input = the service could not use this request or image.
failure-reason-unknown = something went wrong on our side.
button-regenerate = 🔁 Again
button-edit = ✏️ Edit
button-original = 📎 Original
edit-ask-prompt = ✏️ Send what should change in this image.

## Balance and profile
balance-text =
    💰 Balance: <b>{ $balance }</b> credits
    🎁 Free generations left: <b>{ $trial }</b>
balance-buys = That is about { $count } images with { $model }.

## Top up
topup-title = Choose a package. You pay with Telegram Stars ⭐
topup-package = { $credits } credits — { $stars } ⭐
invoice-title = { $credits } credits
invoice-description = { $credits } credits for image generation.
precheckout-invalid = This offer is no longer available. Open the top-up menu again.
payment-confirmed =
    ✅ Payment received: +{ $credits } credits.
    Balance: <b>{ $balance }</b> credits.
payment-refunded = ↩️ The payment was refunded; { $credits } credits were taken back.
referral-earned = 🎉 Your friend topped up: you earned <b>{ $credits }</b> credits.

## History
history-empty = You have no images yet. Send a description to create one.
history-title = Your images (newest first):
history-item = { $status } { $model }: { $prompt }
history-status-succeeded = ✅
history-status-failed = ❌
history-status-active = ⏳
button-older = Older ➡️
button-newer = ⬅️ Newer
history-no-image = This one has no image.

## Referral
referral-text =
    👥 Invite friends with your link:
    { $link }
    You get { $percent }% of every top-up they make.
    Joined: <b>{ $count }</b> · Earned: <b>{ $earned }</b> credits

## Language
language-title = Choose your language:
language-changed = Language: English 🇬🇧

# Each language by its own name, the same in every file.
language-name-uz = 🇺🇿 O'zbekcha
language-name-ru = 🇷🇺 Русский
language-name-en = 🇬🇧 English

## Help
help-text =
    Send a description to create an image, or a photo with a caption to edit it. A photo without a caption opens the photo tools.
    Prices:
help-model-line = • { $name }: { $price }
help-support = Questions: { $contact }

## Errors
error-insufficient =
    Not enough credits: this costs { $required }, your balance is { $balance }.
error-too-many-active = { $active ->
    [one] You already have { $active } image in progress. Wait for it to finish.
   *[other] You already have { $active } images in progress. Wait for one to finish.
}
error-unavailable = The service is busy. Try again in a moment.
error-unexpected = Something went wrong. Try again in a moment.
error-banned = ⛔️ Your access is blocked. Reason: { $reason }
error-throttled = Too fast — wait a few seconds.
error-invalid = This request cannot be made: { $details }

## Operators' notices (to ADMIN_CHAT_ID, in DEFAULT_LANGUAGE)
notice-provider-balance-low =
    ⚠️ { $provider }: the balance is { $balance }, below the minimum of { $minimum }.
    Its models answer "unavailable" until the account is topped up.
notice-provider-balance-recovered =
    ✅ { $provider }: the balance is { $balance } again (minimum { $minimum }). Its models are available.
notice-daily-report =
    📊 Report for { $date } (UTC)
    Users: { $users_new } new, { $users_active } active, { $users_total } in all
    Generations: { $generations } ({ $succeeded } done, { $failed } failed; success rate { $success_rate })
    Time to a result: median { $median }, 95% within { $ninety_fifth }
    Stars: { $stars } from { $payments } payments
    Credits: { $credits_sold } sold, { $credits_spent } spent, { $credits_refunded } refunded, { $credits_given_free } given free
    Free generations used: { $free_generations }
    Referrals: { $referred_users } new users, { $referral_credits } bonus credits
notice-seconds = { $seconds } s
notice-none = —
notice-broadcast-completed =
    📣 Broadcast #{ $id } is complete ({ $total } recipients): { $sent } sent, { $blocked } blocked the bot, { $failed } failed.
notice-broadcast-cancelled =
    📣 Broadcast #{ $id } was cancelled ({ $total } recipients): { $sent } sent, { $blocked } blocked the bot, { $failed } failed, { $remaining } not sent.

## The Mini App (web/app)
app-outside-telegram-title = Open this in Telegram
app-outside-telegram = This app runs inside Telegram: open it from the bot's menu button.
app-tab-gallery = 🖼 My images
app-tab-create = 🎨 Create
app-loading = Loading…
app-model-unavailable = { $model } (unavailable now)
app-error = Something went wrong: { $detail }
app-gallery-empty = You have no images yet. Create one!
app-close = Close
app-download = Download
app-prompt-placeholder = Describe the picture you want
app-add-images = Add photos ({ $count }/{ $max })
app-remove-image = Remove
app-uploading = Uploading…
app-quote = Price: { $price }
app-status-queued = ⏳ Queued
app-status-running = 🎨 Drawing…
app-status-succeeded = ✅ Done
app-status-failed = ❌ Failed
app-use-as-reference = Use as reference
app-tab-wallet = 💰 Balance
app-balance = Balance: { $balance } credits
app-free-left = Free generations left: { $trial }
app-topup-title = Top up with Telegram Stars ⭐
app-payment-waiting = Payment received. Adding the credits…
app-payment-credited = ✅ Credits added. Balance: { $balance } credits.
app-payment-pending = The payment is being processed: the credits will appear here once it goes through.
app-payment-failed = The payment did not go through. Nothing was charged.
app-payment-slow = The credits have not arrived yet. They will be added as soon as Telegram confirms the payment.
app-payment-unsupported = This Telegram version cannot pay from here: update Telegram or use /topup in the bot.
app-referral-title = 👥 Invite friends
app-referral-terms = You get { $percent }% of every top-up they make. Joined: { $count } · Earned: { $earned } credits
app-referral-share = Share the link
app-referral-share-text = Create images with AI right in Telegram. Join with my link!
app-referral-no-link = The invitation link is not available right now. Try /referral in the bot.

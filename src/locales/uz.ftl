# Botning va yetkazib berishlarning o'zbekcha matnlari. Kalitlar va o'rinbosarlar en.ftl bilan bir xil (test tekshiradi).

## Commands (setMyCommands)
command-start = Asosiy menyu
command-generate = Rasm yaratish
command-balance = Balans va bepul generatsiyalar
command-topup = Telegram Stars bilan kredit sotib olish
command-history = Mening rasmlarim
command-referral = Do'stlarni taklif qilish
command-language = Til
command-help = Yordam va narxlar
# The button beside the message field that opens the Mini App (setChatMenuButton)
menu-button-app = 🖼 Ilova

## Main menu
start-greeting =
    Salom, { $name }! 👋
    Qanday rasm kerakligini yozing — men chizib beraman. Rasmni o'zgartirish uchun izohli rasm yuboring.
menu-title = Nima qilamiz?
button-generate = 🎨 Yaratish
button-balance = 💰 Balans
button-topup = ⭐ To'ldirish
button-history = 🖼 Mening rasmlarim
button-referral = 👥 Do'stlarni taklif qilish
button-language = 🌐 Til
button-help = ❓ Yordam
button-back = ⬅️ Orqaga
button-menu = 🏠 Menyu

## Generating
generate-ask-prompt = ✍️ Rasmni bitta xabarda tasvirlab bering yoki uni o'zgartirish uchun izohli rasm yuboring.
generate-card =
    <b>{ $model }</b> · { $price }
    ⏱ { $duration }
generate-card-prompt = So'rov: <i>{ $prompt }</i>
generate-card-references = { $count ->
   *[other] 🖼 o'zgartirish uchun { $count } ta rasm
}
price-free = bepul ({ $left } ta bepul qoldi)
price-credits = { $credits } kredit
duration-seconds = taxminan { $seconds } soniya
duration-unknown = bir necha soniyadan bir necha daqiqagacha
button-model = 🤖 Model: { $model }
button-parameter = { $label }: { $value }
button-start-free = 🚀 Boshlash — bepul
button-start-credits = 🚀 Boshlash — { $credits } kredit
models-title = Modelni tanlang:
model-line = { $name } — { $price }
parameter-title = { $label }:
generate-started = ⏳ Navbatda
generate-already-started = Bu so'rov allaqachon bajarilmoqda.
generate-draft-expired = So'rov eskirgan. Tavsifni qaytadan yuboring.
generate-prompt-too-long = Tavsif juda uzun: ko'pi bilan { $max } belgi.
generate-needs-image = Bu vosita uchun rasm kerak: rasm yuboring.
tools-title = Bu rasm bilan nima qilay?

## Deliveries (written by the worker)
delivery-status-running = 🎨 Chizyapman…
delivery-status-done = ✅ Tayyor
delivery-result-caption = { $model } · { $cost }
delivery-cost-free = bepul generatsiya
delivery-cost-credits = { $credits } kredit
delivery-failed = 😔 Rasmni yaratib bo'lmadi: { $reason }
delivery-refunded-credits = { $credits } kredit balansingizga qaytarildi.
delivery-refunded-trial = Bepul generatsiyangiz qaytarildi.
failure-reason-timeout = juda uzoq vaqt ketdi.
failure-reason-refused = xizmat bu so'rovni rad etdi (ko'pincha kontent filtri). Boshqa so'zlar bilan urinib ko'ring.
failure-reason-unavailable = rasm xizmati hozir ishlamayapti. Bir necha daqiqadan keyin urinib ko'ring.
failure-reason-bad-input = xizmat bu so'rov yoki rasmdan foydalana olmadi.
failure-reason-unknown = bizning tomonda nimadir xato ketdi.
button-regenerate = 🔁 Yana
button-edit = ✏️ O'zgartirish
button-original = 📎 Asl fayl
edit-ask-prompt = ✏️ Bu rasmda nimani o'zgartirish kerakligini yozing.

## Balance and profile
balance-text =
    💰 Balans: <b>{ $balance }</b> kredit
    🎁 Qolgan bepul generatsiyalar: <b>{ $trial }</b>
balance-buys = Bu { $model } bilan taxminan { $count } ta rasmga yetadi.

## Top up
topup-title = Paketni tanlang. To'lov Telegram Stars ⭐ bilan
topup-package = { $credits } kredit — { $stars } ⭐
invoice-title = { $credits } kredit
invoice-description = Rasm yaratish uchun { $credits } kredit.
precheckout-invalid = Bu taklif endi amal qilmaydi. To'ldirish menyusini qaytadan oching.
payment-confirmed =
    ✅ To'lov qabul qilindi: +{ $credits } kredit.
    Balans: <b>{ $balance }</b> kredit.
payment-refunded = ↩️ To'lov qaytarildi; { $credits } kredit qaytarib olindi.
referral-earned = 🎉 Do'stingiz balansini to'ldirdi: siz <b>{ $credits }</b> kredit oldingiz.

## History
history-empty = Hali rasmlaringiz yo'q. Birinchisini yaratish uchun tavsif yuboring.
history-title = Rasmlaringiz (avval yangilari):
history-item = { $status } { $model }: { $prompt }
history-status-succeeded = ✅
history-status-failed = ❌
history-status-active = ⏳
button-older = Oldingilar ➡️
button-newer = ⬅️ Keyingilar
history-no-image = Bu so'rovda rasm yo'q.

## Referral
referral-text =
    👥 Do'stlaringizni havolangiz orqali taklif qiling:
    { $link }
    Ularning har bir to'ldirishidan { $percent }% olasiz.
    Qo'shildi: <b>{ $count }</b> · Ishlab topildi: <b>{ $earned }</b> kredit

## Language
language-title = Tilni tanlang:
language-changed = Til: o'zbekcha 🇺🇿

# Each language by its own name, the same in every file.
language-name-uz = 🇺🇿 O'zbekcha
language-name-ru = 🇷🇺 Русский
language-name-en = 🇬🇧 English

## Help
help-text =
    Rasm yaratish uchun tavsif yuboring yoki o'zgartirish uchun izohli rasm yuboring. Izohsiz rasm vositalarni ochadi.
    Narxlar:
help-model-line = • { $name }: { $price }
help-support = Savollar: { $contact }

## Errors
error-insufficient =
    Kredit yetarli emas: { $required } kerak, balansingiz { $balance }.
error-too-many-active = Sizda allaqachon { $active } ta rasm tayyorlanmoqda. Bittasi tugashini kuting.
error-unavailable = Xizmat band. Birozdan keyin urinib ko'ring.
error-unexpected = Nimadir xato ketdi. Birozdan keyin urinib ko'ring.
error-banned = ⛔️ Kirish bloklangan. Sabab: { $reason }
error-throttled = Juda tez — bir necha soniya kuting.
error-invalid = Bu so'rovni bajarib bo'lmaydi: { $details }

## Operators' notices (to ADMIN_CHAT_ID, in DEFAULT_LANGUAGE)
notice-provider-balance-low =
    ⚠️ { $provider }: balans { $balance }, minimal { $minimum } dan past.
    Hisob to'ldirilmaguncha uning modellari mavjud emas.
notice-provider-balance-recovered =
    ✅ { $provider }: balans yana { $balance } (minimal { $minimum }). Uning modellari mavjud.
notice-daily-report =
    📊 { $date } hisoboti (UTC)
    Foydalanuvchilar: { $users_new } yangi, { $users_active } faol, jami { $users_total }
    Generatsiyalar: { $generations } ({ $succeeded } tayyor, { $failed } xato; muvaffaqiyat { $success_rate })
    Natijagacha vaqt: mediana { $median }, 95% { $ninety_fifth } ichida
    Yulduzlar: { $payments } ta to'lovdan { $stars }
    Kreditlar: { $credits_sold } sotildi, { $credits_spent } sarflandi, { $credits_refunded } qaytarildi, { $credits_given_free } bepul berildi
    Bepul generatsiyalar: { $free_generations }
    Referallar: { $referred_users } yangi foydalanuvchi, { $referral_credits } bonus kredit
notice-seconds = { $seconds } s
notice-none = —
notice-broadcast-completed =
    📣 #{ $id } xabarnoma yakunlandi ({ $total } qabul qiluvchi): { $sent } yuborildi, { $blocked } botni bloklagan, { $failed } xato.
notice-broadcast-cancelled =
    📣 #{ $id } xabarnoma bekor qilindi ({ $total } qabul qiluvchi): { $sent } yuborildi, { $blocked } botni bloklagan, { $failed } xato, { $remaining } yuborilmadi.

## The Mini App (web/app)
app-outside-telegram-title = Buni Telegramda oching
app-outside-telegram = Bu ilova Telegram ichida ishlaydi: uni botning menyu tugmasidan oching.
app-tab-gallery = 🖼 Rasmlarim
app-tab-create = 🎨 Yaratish
app-loading = Yuklanmoqda…
app-model-unavailable = { $model } (hozir mavjud emas)
app-error = Nimadir xato ketdi: { $detail }
app-gallery-empty = Sizda hali rasm yo'q. Birinchisini yarating!
app-close = Yopish
app-download = Yuklab olish
app-prompt-placeholder = Qanday rasm kerakligini yozing
app-add-images = Rasm qo'shish ({ $count }/{ $max })
app-remove-image = Olib tashlash
app-uploading = Yuklanmoqda…
app-quote = Narxi: { $price }
app-status-queued = ⏳ Navbatda
app-status-running = 🎨 Chizilmoqda…
app-status-succeeded = ✅ Tayyor
app-status-failed = ❌ Bo'lmadi
app-use-as-reference = Namuna sifatida ishlatish
app-tab-wallet = 💰 Balans
app-balance = Balans: { $balance } kredit
app-free-left = Qolgan bepul generatsiyalar: { $trial }
app-topup-title = Telegram Stars ⭐ bilan to'ldirish
app-payment-waiting = To'lov qabul qilindi. Kreditlar qo'shilmoqda…
app-payment-credited = ✅ Kreditlar qo'shildi. Balans: { $balance } kredit.
app-payment-pending = To'lov ko'rib chiqilmoqda: u o'tishi bilan kreditlar shu yerda paydo bo'ladi.
app-payment-failed = To'lov o'tmadi. Hech narsa yechilmadi.
app-payment-slow = Kreditlar hali kelmadi. Telegram to'lovni tasdiqlashi bilan ular qo'shiladi.
app-payment-unsupported = Telegramning bu versiyasi bu yerdan to'lay olmaydi: Telegramni yangilang yoki botda /topup dan foydalaning.
app-referral-title = 👥 Do'stlarni taklif qiling
app-referral-terms = Ularning har bir to'ldirishidan { $percent }% olasiz. Qo'shildi: { $count } · Ishlab topildi: { $earned } kredit
app-referral-share = Havolani ulashish
app-referral-share-text = Telegramning o'zida sun'iy intellekt bilan rasmlar yarating. Mening havolam orqali qo'shiling!
app-referral-no-link = Taklif havolasi hozir mavjud emas. Botda /referral ni sinab ko'ring.

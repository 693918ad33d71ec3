// Words of the console in Arabic and English; the page's direction follows the language.

const WORDS = {
  en: {
    app: "Kaleem console", login: "Log in", signup: "Create an account", logout: "Log out",
    email: "Email", password: "Password", store: "Store name", language: "Language",
    haveAccount: "I have an account", newAccount: "New here? Create an account",
    inbox: "Inbox", catalog: "Catalog", knowledge: "Knowledge", orders: "Orders", leads: "Leads",
    channels: "Channels", analytics: "Analytics", team: "Team", settings: "Widget",
    live: "Live", offline: "Offline", all: "All", channel: "Channel", status: "Status",
    assignee: "Assignee", label: "Label", search: "Search", open: "Open", pending: "Pending",
    resolved: "Resolved", takeover: "Take over", handback: "Hand back to bot", resolve: "Resolve",
    reply: "Reply", send: "Send", notes: "Notes", addNote: "Add note", labels: "Labels",
    assign: "Assign", cart: "Cart", emptyCart: "The cart is empty", ordersOf: "Orders",
    handoff: "Needs a human", botPaused: "You have this conversation: the bot is silent",
    noConversation: "Choose a conversation", customer: "Customer", notAnswered: "not answered",
    agent: "Agent", bot: "Bot", save: "Save", cancel: "Cancel", edit: "Edit", delete: "Delete",
    create: "Create", import: "Import", importFile: "Import a file (JSONL or CSV)",
    progress: "Progress", badLines: "Lines not imported", line: "Line", done: "Done",
    failed: "Failed", running: "Running", products: "Products", sku: "SKU", title: "Title",
    price: "Price", currency: "Currency", category: "Category", inStock: "In stock",
    description: "Description", url: "Link", image: "Image link", preview: "Search preview",
    previewHelp: "What the bot finds for a customer's question", score: "Score",
    documents: "Documents", body: "Text", gaps: "Questions the bot could not answer",
    count: "Times asked", answer: "Write an answer", newDoc: "New document", more: "More",
    total: "Total", created: "Created", phone: "Phone", city: "City", name: "Name", note: "Note",
    connect: "Connect", disconnect: "Disconnect", webhook: "Webhook URL", deadLetters: "Delivery failures",
    replay: "Replay", reason: "Reason", attempts: "Attempts", none: "Nothing here yet",
    days: "Days", firstReply: "First reply (seconds)", coverage: "Answer coverage",
    handoffRate: "Handoff rate", conversion: "Conversion", topQuestions: "Top questions",
    users: "Users", role: "Role", invite: "Invite", inviteToken: "Invitation token (send it to them)",
    apiKeys: "API keys", keyShown: "Copy the key now: it is shown once", revoke: "Revoke",
    color: "Colour", greeting: "Greeting", origins: "Sites allowed to embed the chat (one per line)",
    embed: "Paste this on your site", saved: "Saved", readOnly: "Read only (viewer)",
    conversations: "Conversations", messages: "Messages", unread: "unread", kind: "Kind",
    pasteWhere: "What to paste where", connected: "Connected channels", p50: "p50", p95: "p95",
    acceptInvite: "Accept an invitation", loadMore: "Load more", close: "Close", when: "When",
    new: "New", confirmed: "Confirmed", shipped: "Shipped", delivered: "Delivered",
    cancelled: "Cancelled", contacted: "Contacted", won: "Won", lost: "Lost",
  },
  ar: {
    app: "لوحة كليم", login: "تسجيل الدخول", signup: "إنشاء حساب", logout: "تسجيل الخروج",
    email: "البريد الإلكتروني", password: "كلمة المرور", store: "اسم المتجر", language: "اللغة",
    haveAccount: "لدي حساب", newAccount: "جديد هنا؟ أنشئ حساباً",
    inbox: "المحادثات", catalog: "المنتجات", knowledge: "المعرفة", orders: "الطلبات", leads: "العملاء المحتملون",
    channels: "القنوات", analytics: "التحليلات", team: "الفريق", settings: "نافذة الدردشة",
    live: "مباشر", offline: "غير متصل", all: "الكل", channel: "القناة", status: "الحالة",
    assignee: "المسؤول", label: "وسم", search: "بحث", open: "مفتوحة", pending: "بانتظار موظف",
    resolved: "مغلقة", takeover: "استلام المحادثة", handback: "إعادتها للبوت", resolve: "إغلاق",
    reply: "الرد", send: "إرسال", notes: "ملاحظات", addNote: "أضف ملاحظة", labels: "الوسوم",
    assign: "إسناد", cart: "السلة", emptyCart: "السلة فارغة", ordersOf: "الطلبات",
    handoff: "يحتاج موظفاً", botPaused: "المحادثة معك: البوت صامت",
    noConversation: "اختر محادثة", customer: "العميل", notAnswered: "بلا رد",
    agent: "موظف", bot: "البوت", save: "حفظ", cancel: "إلغاء", edit: "تعديل", delete: "حذف",
    create: "إنشاء", import: "استيراد", importFile: "استيراد ملف (JSONL أو CSV)",
    progress: "التقدم", badLines: "أسطر لم تُستورد", line: "السطر", done: "اكتمل",
    failed: "فشل", running: "قيد التنفيذ", products: "المنتجات", sku: "رمز المنتج", title: "الاسم",
    price: "السعر", currency: "العملة", category: "الفئة", inStock: "متوفر",
    description: "الوصف", url: "الرابط", image: "رابط الصورة", preview: "معاينة البحث",
    previewHelp: "ما يجده البوت لسؤال العميل", score: "الدرجة",
    documents: "المستندات", body: "النص", gaps: "أسئلة لم يستطع البوت الإجابة عنها",
    count: "عدد المرات", answer: "اكتب إجابة", newDoc: "مستند جديد", more: "المزيد",
    total: "الإجمالي", created: "أُنشئ", phone: "الجوال", city: "المدينة", name: "الاسم", note: "ملاحظة",
    connect: "ربط", disconnect: "فصل", webhook: "رابط الويب هوك", deadLetters: "رسائل لم تُسلَّم",
    replay: "إعادة الإرسال", reason: "السبب", attempts: "المحاولات", none: "لا يوجد شيء بعد",
    days: "الأيام", firstReply: "أول رد (ثوانٍ)", coverage: "نسبة الإجابة",
    handoffRate: "نسبة التحويل لموظف", conversion: "نسبة الشراء", topQuestions: "أكثر الأسئلة",
    users: "المستخدمون", role: "الدور", invite: "دعوة", inviteToken: "رمز الدعوة (أرسله له)",
    apiKeys: "مفاتيح API", keyShown: "انسخ المفتاح الآن: يظهر مرة واحدة", revoke: "إلغاء",
    color: "اللون", greeting: "رسالة الترحيب", origins: "المواقع المسموح لها بعرض الدردشة (سطر لكل موقع)",
    embed: "الصق هذا في موقعك", saved: "تم الحفظ", readOnly: "للقراءة فقط (مشاهد)",
    conversations: "المحادثات", messages: "الرسائل", unread: "غير مقروءة", kind: "النوع",
    pasteWhere: "ماذا تلصق وأين", connected: "القنوات المربوطة", p50: "الوسيط", p95: "p95",
    acceptInvite: "قبول دعوة", loadMore: "تحميل المزيد", close: "إغلاق", when: "الوقت",
    new: "جديد", confirmed: "مؤكد", shipped: "تم الشحن", delivered: "تم التسليم",
    cancelled: "ملغى", contacted: "تم التواصل", won: "تم البيع", lost: "لم يتم",
  },
};

const KEY = "kaleem:console:lang";
let lang = localStorage.getItem(KEY) || (navigator.language || "ar").slice(0, 2);
if (!WORDS[lang]) lang = "ar";

export function t(key) { return WORDS[lang][key] || WORDS.en[key] || key; }
export function language() { return lang; }
export function setLanguage(next) {
  lang = WORDS[next] ? next : "ar";
  localStorage.setItem(KEY, lang);
  applyDirection();
}
export function applyDirection() {
  document.documentElement.lang = lang;
  document.documentElement.dir = lang === "ar" ? "rtl" : "ltr";
}
export function when(seconds) {
  if (!seconds) return "";
  return new Intl.DateTimeFormat(lang === "ar" ? "ar" : "en", { dateStyle: "short", timeStyle: "short" })
    .format(new Date(seconds * 1000));
}
export function money(value, currency) {
  if (value === null || value === undefined) return "";
  try {
    return new Intl.NumberFormat(lang === "ar" ? "ar-SA" : "en", currency ? { style: "currency", currency } : {}).format(value);
  } catch { return `${value} ${currency || ""}`; }
}
export function percent(value) {
  return value === null || value === undefined ? "—" : `${Math.round(value * 100)}%`;
}

import type { Page } from "./lib/router.svelte.ts";
import ApiKeys from "./pages/admin/ApiKeys.svelte";
import Audit from "./pages/admin/Audit.svelte";
import Numbers from "./pages/admin/Numbers.svelte";
import PromptDetail from "./pages/admin/PromptDetail.svelte";
import Prompts from "./pages/admin/Prompts.svelte";
import AdminSettings from "./pages/admin/Settings.svelte";
import Users from "./pages/admin/Users.svelte";
import Analytics from "./pages/analytics/Analytics.svelte";
import CustomerDetail from "./pages/business/CustomerDetail.svelte";
import Customers from "./pages/business/Customers.svelte";
import InvoiceDetail from "./pages/business/InvoiceDetail.svelte";
import Invoices from "./pages/business/Invoices.svelte";
import Reminders from "./pages/business/Reminders.svelte";
import Home from "./pages/Home.svelte";
import Calls from "./pages/history/Calls.svelte";
import SessionRecord from "./pages/history/SessionRecord.svelte";
import Sessions from "./pages/history/Sessions.svelte";
import NotFound from "./pages/NotFound.svelte";
import SessionLive from "./pages/SessionLive.svelte";
import Softphone from "./pages/Softphone.svelte";

/**
 * Every page of the console, matched in order (router.svelte.ts), and the navigation: `nav` pages appear in the
 * header's menu in this order.
 */
export const pages: Page[] = [
  { path: "/", title: "Dashboard", component: Home },
  { path: "/softphone", title: "Softphone", component: Softphone },
  { path: "/sessions/:id", title: "Live session", component: SessionLive },
  { path: "/history", title: "History: sessions", component: Sessions },
  { path: "/history/calls", title: "History: calls", component: Calls },
  { path: "/sessions/:id/record", title: "Session record", component: SessionRecord },
  { path: "/customers", title: "Customers", component: Customers },
  { path: "/customers/:id", title: "Customer", component: CustomerDetail },
  { path: "/invoices", title: "Invoices", component: Invoices },
  { path: "/invoices/:id", title: "Invoice", component: InvoiceDetail },
  { path: "/reminders", title: "Reminders", component: Reminders },
  { path: "/admin", title: "Admin: users", component: Users },
  { path: "/admin/numbers", title: "Admin: phone numbers", component: Numbers },
  { path: "/admin/keys", title: "Admin: API keys", component: ApiKeys },
  { path: "/admin/prompts", title: "Admin: prompts", component: Prompts },
  { path: "/admin/prompts/:id", title: "Admin: prompt", component: PromptDetail },
  { path: "/admin/settings", title: "Admin: settings", component: AdminSettings },
  { path: "/admin/audit", title: "Admin: audit log", component: Audit },
  { path: "/analytics", title: "Analytics", component: Analytics },
];

export const nav: Array<{ path: string; label: string }> = [
  { path: "/", label: "Dashboard" },
  { path: "/softphone", label: "Softphone" },
  { path: "/history", label: "History" },
  { path: "/customers", label: "Business" },
  { path: "/analytics", label: "Analytics" },
  { path: "/admin", label: "Admin" },
];

export const notFound: Page = { path: "*", title: "Not found", component: NotFound };

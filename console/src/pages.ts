import type { Page } from "./lib/router.svelte.ts";
import Home from "./pages/Home.svelte";
import NotFound from "./pages/NotFound.svelte";
import Softphone from "./pages/Softphone.svelte";
import SessionLive from "./pages/SessionLive.svelte";

/**
 * Every page of the console, matched in order (router.svelte.ts), and the navigation: `nav` pages appear in the
 * header's menu in this order.
 */
export const pages: Page[] = [
  { path: "/", title: "Dashboard", component: Home },
  { path: "/softphone", title: "Softphone", component: Softphone },
  { path: "/sessions/:id", title: "Live session", component: SessionLive },
];

export const nav: Array<{ path: string; label: string }> = [
  { path: "/", label: "Dashboard" },
  { path: "/softphone", label: "Softphone" },
];

export const notFound: Page = { path: "*", title: "Not found", component: NotFound };

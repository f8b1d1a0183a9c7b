// End-to-end tests of Tollgate's web pages in Debian's headless Chromium.
//
//   node e2e/run.mjs KEYS_JSON SCREENSHOT_DIR
//
// KEYS_JSON is what `tollgate demo --keys-file` writes: the server's URL and one
// key per role. Each role logs in through the login form; each page is checked
// against the figures the JSON API gives for the same data (never against
// numbers written here), and a screenshot of each page is saved. Exits non-zero
// on the first failed check, naming it.

import { readFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const [keysFile, shots] = process.argv.slice(2);
if (!keysFile || !shots) {
  console.error("usage: node e2e/run.mjs KEYS_JSON SCREENSHOT_DIR");
  process.exit(2);
}
const { url, keys } = JSON.parse(readFileSync(keysFile, "utf8"));
mkdirSync(shots, { recursive: true });
const MONTH = process.env.E2E_MONTH ?? "2026-10";

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"],
});
let checks = 0;
const check = (what, fn) => {
  try {
    fn();
    checks += 1;
    console.log(`ok   ${what}`);
  } catch (e) {
    console.error(`FAIL ${what}\n${e.message}`);
    throw e;
  }
};

/** The JSON API, with a role's key. */
async function api(role, path) {
  const res = await fetch(url + path, { headers: { authorization: `Bearer ${keys[role]}` } });
  assert.equal(res.status, 200, `${path}: ${res.status}`);
  return res.json();
}

/** "$37,395.17" -> 3739517 (cents). */
const cents = (text) => Math.round(Number(text.replace(/[$,\s]/g, "")) * 100);

async function login(role) {
  const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
  const page = await context.newPage();
  await page.goto(`${url}/login`);
  await page.getByLabel("API key").fill(keys[role]);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.waitForLoadState("networkidle");
  return { context, page };
}

async function shot(page, name) {
  const path = join(shots, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  console.log(`     screenshot ${path}`);
}

try {
  // --- login refused, then FinOps
  {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${url}/finops`);
    check("a page without a session leads to the login", () =>
      assert.match(page.url(), /\/login\?next=%2Ffinops$/));
    await page.getByLabel("API key").fill("tg_not-a-key");
    await page.getByRole("button", { name: "Log in" }).click();
    const alert = await page.getByRole("alert").textContent();
    check("a wrong key is refused with a reason", () => assert.match(alert, /unknown, revoked or expired/));
    await shot(page, "01-login-refused");
    await context.close();
  }

  {
    const { context, page } = await login("finops");
    check("a finops login lands on FinOps", () => assert.match(page.url(), /\/finops$/));
    await page.goto(`${url}/finops?month=${MONTH}`);
    const rows = await api("finops", `/api/v1/reports/chargeback?month=${MONTH}&by=cost_centre`);
    const total = rows.find((r) => r.cost_centre === "TOTAL");
    const shown = await page.getByTestId("stat-total").locator(".value").textContent();
    check(`FinOps shows the month's total (${total.total})`, () => assert.equal(cents(shown), cents(total.total)));
    const tableTotal = await page.getByTestId("total").first().textContent();
    check("the cost-centre table adds up to the same total", () => assert.equal(cents(tableTotal), cents(total.total)));
    const unallocated = rows.find((r) => r.cost_centre === "unallocated");
    if (unallocated && cents(unallocated.total) > 0) {
      const callout = await page.getByTestId("unallocated").textContent();
      check("unallocated spend is called out", () => assert.ok(callout.includes(unallocated.total.replace(/\B(?=(\d{3})+(?!\d))/g, ","))));
    }
    const bars = await page.locator("figure.chart svg rect.seg").count();
    check("the daily spend chart has bars", () => assert.ok(bars > 20, `${bars} bars`));
    await page.locator("details.numbers summary").first().click();
    const dayRows = await page.locator("figure.chart").first().locator("tbody tr").count();
    check("the numbers behind the chart are one click away", () => assert.equal(dayRows, 31));
    const budgets = await api("finops", "/api/v1/budgets");
    const budgetRows = await page.getByTestId("budgets").locator("tbody tr").count();
    check("every budget is listed", () => assert.equal(budgetRows, (budgets.budgets ?? budgets).length));
    const invoice = await api("finops", `/api/v1/reports/reconcile?month=${MONTH}`);
    if (invoice.cost_files.length > 0) {
      const billed = await page.getByTestId("invoice-billed").locator(".value").textContent();
      check(`the Invoice section shows the bill (${invoice.total.billed})`, () => assert.equal(cents(billed), cents(invoice.total.billed)));
      const estimated = await page.getByTestId("invoice-estimated").locator(".value").textContent();
      check("the Invoice section shows the estimate it is compared with", () => assert.equal(cents(estimated), cents(invoice.total.estimated)));
    } else {
      const none = await page.getByTestId("no-invoice").textContent();
      check("the Invoice section says no cost export is imported", () => assert.match(none, /tollgate costs import/));
    }
    await shot(page, "02-finops");

    // Drill down: the first cost centre, its first subscription, its first model.
    const top = rows.filter((r) => r.cost_centre !== "TOTAL")[0];
    await page.getByRole("link", { name: top.cost_centre, exact: true }).first().click();
    check("a cost centre opens its subscriptions", () => assert.match(page.url(), /cost_centre=/));
    const ccTotal = await page.getByTestId("total").textContent();
    check(`the drill-down keeps ${top.cost_centre}'s total`, () => assert.equal(cents(ccTotal), cents(top.total)));
    await page.locator("table tbody tr th a").first().click();
    await page.locator("table tbody tr th a").first().click();
    check("drilling reaches days", () => assert.match(page.url(), /model=/));
    const h1 = await page.locator("h1").textContent();
    check("the deepest level is days", () => assert.match(h1, /^Day spend/));
    await shot(page, "03-finops-drill-days");

    // A forged close: the session's cookie, but not its CSRF token.
    const forged = await page.request.post(`${url}/finops/close`, {
      form: { csrf: "forged", month: MONTH },
    });
    check("a form without the session's CSRF token is refused", () => assert.equal(forged.status(), 403));
    // The session's own token, but posted from another site.
    const token = await page.locator('input[name="csrf"]').first().inputValue();
    const fromElsewhere = await page.request.post(`${url}/finops/close`, {
      form: { csrf: token, month: MONTH },
      headers: { origin: "https://evil.example" },
    });
    check("a form from another site is refused", () => assert.equal(fromElsewhere.status(), 403));
    const months = await api("finops", "/api/v1/months");
    check("the forged forms closed nothing", () => assert.ok(!months.some((m) => m.month === MONTH && m.action === "close")));
    await context.close();
  }

  // --- Operations
  {
    const { context, page } = await login("operator");
    check("an operator login lands on Operations", () => assert.match(page.url(), /\/operations$/));
    await page.goto(`${url}/operations?month=${MONTH}`);
    const marks = await page.getByTestId("throttling").locator("rect.mark").count();
    const episodes = await api("operator", `/api/v1/alerts/episodes?rule=backend-429-rate&from=${MONTH}-01T00:00:00Z&to=${MONTH}-28T00:00:00Z`);
    check(`the PTU saturation is shaded on the 429 chart (${episodes.length} episode(s))`, () => {
      assert.ok(episodes.length > 0, "no backend-429 episode in the month");
      assert.ok(marks >= 1, `${marks} marks`);
    });
    const lines = await page.getByTestId("throttling").locator("polyline").count();
    check("the 429 chart draws the three sources", () => assert.ok(lines >= 3, `${lines} lines`));
    const latencyLines = await page.getByTestId("latency").locator("polyline").count();
    check("p95 latency is drawn per backend", () => assert.ok(latencyLines >= 3, `${latencyLines}`));
    const firingNow = await api("operator", "/api/v1/alerts/episodes?state=firing");
    const firingShown = await page.getByTestId("stat-firing").locator(".value").textContent();
    check(`the alerts firing now are counted (${firingNow.length})`, () =>
      assert.equal(Number(firingShown), firingNow.length));
    const episodeText = await page.getByTestId("episodes").textContent();
    check("the alert history lists the saturation", () => assert.match(episodeText, /backend-429-rate/));
    const sla = await api("operator", `/api/v1/reports/sla?month=${MONTH}&by=backend`);
    const sloRows = await page.getByTestId("slo").locator("tbody tr").count();
    check("every backend has its error budget", () => assert.equal(sloRows, sla.rows.length));
    await shot(page, "04-operations");
    await context.close();
  }

  // --- Security
  {
    const { context, page } = await login("security");
    check("a security login lands on Security", () => assert.match(page.url(), /\/security$/));
    const reach = await api("security", "/api/v1/lineage/reach?kinds=agent");
    const agents = (await page.getByTestId("top-agents").locator("tbody th").allTextContents()).map((t) => t.trim());
    check(`the agents reaching Highly Confidential data are named (${reach.map((r) => r.node.name).join(", ")})`, () =>
      assert.deepEqual(agents.sort(), reach.map((r) => r.node.name).sort()));
    const nodes = await page.getByTestId("graph").locator("svg a").count();
    check("the graph is drawn around an agent", () => assert.ok(nodes >= 3, `${nodes} nodes`));
    await shot(page, "05-security-graph");

    await page.locator("#highlight").selectOption("provenance");
    await page.locator("#depth").selectOption("3");
    await page.getByRole("button", { name: "Draw" }).click();
    check("depth and highlight are kept", () => assert.match(page.url(), /depth=3.*highlight=provenance/));
    await shot(page, "06-security-provenance");

    await page.getByTestId("top-agents").locator("tbody th a").first().click();
    const label = await page.getByTestId("effective-label").locator(".value").textContent();
    check("a node page shows its label", () => assert.equal(label.trim(), reach[0]?.node.effective_label ?? label.trim()));
    const why = await page.getByTestId("why-path").locator("li").count();
    check("and the path that explains it", () => assert.ok(why >= 2, `${why} steps`));
    await shot(page, "07-security-node");

    await page.goto(`${url}/security/dlp`);
    const hits = await page.getByTestId("hits").locator("tbody tr").count();
    check("DLP hits are listed", () => assert.ok(hits > 0));
    const agent = (await page.getByTestId("hits-by-agent").locator("tbody th").first().textContent()).trim();
    await page.locator("#agent").fill(agent);
    await page.getByRole("button", { name: "Filter" }).click();
    const agentsShown = new Set(await page.getByTestId("hits").locator("tbody tr td:nth-child(2)").allTextContents());
    check(`the agent filter keeps only ${agent}'s hits`, () => assert.deepEqual([...agentsShown], [agent]));
    await shot(page, "08-security-dlp");

    await page.goto(`${url}/security/sql`);
    await page.getByLabel("Query").fill("SELECT model, count(*) AS requests FROM usage GROUP BY model ORDER BY model");
    await page.getByRole("button", { name: "Run" }).click();
    const sqlRows = await page.getByTestId("sql-result").locator("tbody tr").count();
    check("the SQL console shows results as a table", () => assert.ok(sqlRows > 0));
    await shot(page, "09-security-sql");
    await page.getByLabel("Query").fill("DROP TABLE requests");
    await page.getByRole("button", { name: "Run" }).click();
    const refused = await page.getByTestId("sql-error").textContent();
    check("a writing statement is refused beside the query", () => assert.ok(refused.length > 0));

    for (const path of ["/finops", "/admin"]) {
      const res = await page.goto(`${url}${path}`);
      check(`a security key cannot open ${path}`, () => assert.equal(res.status(), 403));
    }
    await shot(page, "10-security-forbidden");
    const nav = await page.getByRole("navigation", { name: "Sections" }).textContent();
    check("the navigation shows only the security section", () => {
      assert.match(nav, /Security/);
      assert.doesNotMatch(nav, /FinOps|Admin/);
    });
    await page.getByRole("button", { name: "Log out" }).click();
    const after = await page.goto(`${url}/security`);
    check("after logging out the pages ask for a login again", () => assert.match(after.url(), /\/login/));
    await context.close();
  }

  // --- Admin
  {
    const { context, page } = await login("admin");
    await page.goto(`${url}/admin`);
    const keyNames = await page.getByTestId("keys").locator("tbody th").allTextContents();
    check("the admin page lists the demo keys", () => {
      for (const role of Object.keys(keys)) assert.ok(keyNames.includes(`demo-${role}`), role);
    });
    const rules = await api("admin", "/api/v1/alerts/rules");
    const ruleRows = await page.getByTestId("rules").locator("tbody tr").count();
    check("every alert rule is listed", () => assert.equal(ruleRows, rules.length));
    const audit = await page.getByTestId("audit").locator("tbody tr").count();
    check("the audit log is shown", () => assert.ok(audit > 0));
    await page.locator("#new-name").fill("e2e-reader");
    await page.locator("#new-role").selectOption("finops");
    await page.getByRole("button", { name: "Create key" }).click();
    const created = await page.getByTestId("new-key").textContent();
    check("a key made on the page is shown once", () => assert.match(created, /tg_[0-9a-f]{64}/));
    await shot(page, "11-admin");
    await context.close();
  }
  console.log(`\n${checks} checks passed; screenshots in ${shots}`);
} finally {
  await browser.close();
}

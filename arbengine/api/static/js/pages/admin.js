// Admins only: users (ban, unban, role), invite codes (make, list, revoke) and the audit of
// every admin action. Each change asks for confirmation first and says what it did.
"use strict";

import { apiGet, apiPost } from "../api.js";
import { confirmAction } from "../confirm.js";
import { failed, fill, h, loading, panel, table, timeEl } from "../dom.js";
import { startPage } from "../layout.js";
import { poll } from "../poll.js";

const REFRESH_MS = 30000;
const EXPIRIES = [
  ["", "Never"],
  ["86400", "1 day"],
  ["604800", "7 days"],
  ["2592000", "30 days"],
];
const STATUS_TONE = { usable: "ok", used: "", revoked: "bad", expired: "warn" };

const ms = (iso) => (iso ? Date.parse(iso) : null);

function badge(text, tone) {
  return h("span", { class: `badge ${tone || ""}`.trim() }, text);
}

startPage({
  title: "Admin",
  admin: true,
  async render(main, { user: me }) {
    const outcome = h("p", { id: "admin-outcome", role: "status", class: "note" });

    // -- invites --------------------------------------------------------------------------
    const [invitesPanel, invitesBody] = panel("Invite codes", { id: "invites" });
    const count = h("input", { id: "invite-count", type: "number", min: "1", max: "100", value: "1" });
    const expiry = h(
      "select",
      { id: "invite-expiry" },
      EXPIRIES.map(([value, text]) => h("option", { value }, text)),
    );
    const note = h("input", { id: "invite-note", maxlength: "200", placeholder: "whom it is for" });
    const create = h("button", { id: "invite-create", type: "submit" }, "Create invite");
    const made = h("div", { id: "invite-made" });
    const inviteList = h("div", { id: "invite-list" }, loading());
    const form = h(
      "form",
      { class: "toolbar", id: "invite-form" },
      h("label", { class: "picker", for: "invite-count" }, h("span", {}, "How many"), count),
      h("label", { class: "picker", for: "invite-expiry" }, h("span", {}, "Expires"), expiry),
      h("label", { class: "picker", for: "invite-note" }, h("span", {}, "Note"), note),
      create,
    );
    invitesBody.append(form, made, inviteList);

    // -- users ----------------------------------------------------------------------------
    const [usersPanel, usersBody] = panel("Users", { id: "users" });
    const userList = h("div", { id: "user-list" }, loading());
    usersBody.append(userList);

    // -- audit ----------------------------------------------------------------------------
    const [auditPanel, auditBody] = panel("Audit", { id: "audit" });
    const auditList = h("div", { id: "audit-list" }, loading());
    auditBody.append(h("p", { class: "note" }, "Every admin action, from this page or the command line, latest first."), auditList);

    main.append(outcome, invitesPanel, usersPanel, auditPanel);

    async function act(confirmation, path, body, said) {
      if (!(await confirmAction(confirmation))) return;
      try {
        const reply = await apiPost(path, body);
        outcome.className = "note";
        outcome.textContent = said(reply);
      } catch (err) {
        outcome.className = "error";
        outcome.textContent = `Refused: ${err.message}`;
      }
      await refresh();
    }

    function userActions(user) {
      if (user.id === me.id) return h("span", { class: "muted" }, "you");
      const ban = user.banned
        ? h("button", {
            type: "button", class: "secondary", data: { action: "unban" },
            on: { click: () => act(
              { title: `Unban ${user.username}?`, text: `${user.username} will be able to log in again.`, confirmLabel: "Unban" },
              `/api/admin/users/${user.id}/unban`, undefined,
              (r) => (r.result === "done" ? `${user.username} is no longer banned.` : `${user.username} was not banned.`),
            ) },
          }, "Unban")
        : h("button", {
            type: "button", class: "danger", data: { action: "ban" },
            on: { click: () => act(
              {
                title: `Ban ${user.username}?`,
                text: `${user.username} is logged out everywhere at once and cannot log in until unbanned.`,
                confirmLabel: "Ban", danger: true,
              },
              `/api/admin/users/${user.id}/ban`, undefined,
              (r) => `${user.username} is banned (${r.sessions_revoked} session${r.sessions_revoked === 1 ? "" : "s"} ended).`,
            ) },
          }, "Ban");
      const other = user.role === "admin" ? "user" : "admin";
      const role = h("button", {
        type: "button", class: "secondary", data: { action: "role" },
        on: { click: () => act(
          {
            title: other === "admin" ? `Make ${user.username} an admin?` : `Take admin from ${user.username}?`,
            text: other === "admin"
              ? `${user.username} will manage users, invites and live trading.`
              : `${user.username} keeps their account as a user.`,
            confirmLabel: other === "admin" ? "Make admin" : "Make user",
          },
          `/api/admin/users/${user.id}/role`, { role: other },
          (r) => `${user.username} is now ${r.user.role === "admin" ? "an admin" : "a user"}.`,
        ) },
      }, other === "admin" ? "Make admin" : "Make user");
      return h("span", { class: "actions" }, ban, " ", role);
    }

    function inviteActions(invite) {
      if (invite.status !== "usable") return "";
      return h("button", {
        type: "button", class: "secondary", data: { action: "revoke" },
        on: { click: () => act(
          { title: "Revoke this invite?", text: `Nobody will be able to register with ${invite.code}.`, confirmLabel: "Revoke", danger: true },
          `/api/admin/invites/${encodeURIComponent(invite.code)}/revoke`, undefined,
          () => `Invite ${invite.code} revoked.`,
        ) },
      }, "Revoke");
    }

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      create.disabled = true;
      try {
        const body = { count: Number(count.value) || 1 };
        if (expiry.value) body.expires_in = Number(expiry.value);
        if (note.value.trim()) body.note = note.value.trim();
        const reply = await apiPost("/api/admin/invites", body);
        fill(
          made,
          h("p", {}, `Made ${reply.rows.length} invite code${reply.rows.length === 1 ? "" : "s"}: give each one to one person.`),
          h("ul", { id: "invite-codes" }, reply.rows.map((invite) => {
            const link = `${location.origin}/register?invite=${encodeURIComponent(invite.code)}`;
            return h("li", {}, h("code", { class: "invite-code" }, invite.code), " ", h("a", { href: link }, "register link"));
          })),
        );
        outcome.className = "note";
        outcome.textContent = "";
        note.value = "";
      } catch (err) {
        fill(made, failed(err));
      } finally {
        create.disabled = false;
      }
      await refresh();
    });

    async function loadUsers() {
      const data = await apiGet("/api/admin/users", { limit: 1000 });
      fill(userList, table(
        [
          { label: "User", value: (u) => u.username, key: "username" },
          { label: "Role", value: (u) => u.role, key: "role" },
          { label: "State", value: (u) => (u.banned ? badge("banned", "bad") : badge("active", "ok")), key: "state" },
          { label: "Sessions", value: (u) => String(u.active_sessions), num: true, key: "sessions" },
          { label: "Last login", value: (u) => timeEl(ms(u.last_login_at)) },
          { label: "Registered", value: (u) => timeEl(ms(u.created_at)) },
          { label: "Actions", value: userActions },
        ],
        data.rows,
        { emptyText: "No users yet.", label: "Users", rowData: (u) => ({ user: u.username }) },
      ));
    }

    async function loadInvites() {
      const data = await apiGet("/api/admin/invites", { limit: 200 });
      fill(inviteList, table(
        [
          { label: "Code", value: (i) => h("code", {}, i.code), key: "code" },
          { label: "Status", value: (i) => badge(i.status, STATUS_TONE[i.status]), key: "status" },
          { label: "Note", value: (i) => i.note || "" },
          { label: "Made by", value: (i) => i.created_by || "command line" },
          { label: "Made", value: (i) => timeEl(ms(i.created_at)) },
          { label: "Expires", value: (i) => (i.expires_at ? timeEl(ms(i.expires_at)) : "never") },
          { label: "Used by", value: (i) => i.used_by || "" },
          { label: "", value: inviteActions },
        ],
        data.rows,
        { emptyText: "No invite codes yet: create one above.", label: "Invite codes", rowData: (i) => ({ code: i.code }) },
      ));
    }

    async function loadAudit() {
      const data = await apiGet("/api/admin/audit", { limit: 50 });
      fill(auditList, table(
        [
          { label: "When", value: (a) => timeEl(ms(a.at)) },
          { label: "Who", value: (a) => a.who },
          { label: "Action", value: (a) => a.action.replace("_", " "), key: "action" },
          { label: "Target", value: (a) => a.target || "", key: "target" },
          { label: "Result", value: (a) => badge(a.result, a.result === "done" ? "ok" : a.result === "refused" ? "bad" : ""), key: "result" },
        ],
        data.rows,
        { emptyText: "No admin actions yet.", label: "Audit" },
      ));
    }

    async function refresh() {
      const results = await Promise.allSettled([loadUsers(), loadInvites(), loadAudit()]);
      const lists = [userList, inviteList, auditList];
      results.forEach((r, i) => { if (r.status === "rejected") fill(lists[i], failed(r.reason)); });
      if (results.some((r) => r.status === "rejected")) throw results.find((r) => r.status === "rejected").reason;
    }

    await refresh().catch(() => {});
    poll(refresh, REFRESH_MS, { immediate: false });
  },
});

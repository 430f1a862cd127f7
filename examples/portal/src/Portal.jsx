// The whole portal: sign-in, subscriptions with entitlements, plan change with its preview,
// cancel, invoices with PDFs, payment method. Each part asks Relay for what it shows.
import { Component, Suspense, useMemo, useState } from "react";
import {
  RelayEnvironmentProvider,
  graphql,
  useFragment,
  useLazyLoadQuery,
  useMutation,
  usePaginationFragment,
} from "react-relay";

import { createEnvironment, day, initialToken, money, newKey, pdfBlobUrl, saveToken } from "./api.js";

export default function Portal() {
  const [token, setToken] = useState(initialToken);
  const environment = useMemo(() => (token ? createEnvironment(token) : null), [token]);
  const signOut = (message) => {
    saveToken(null);
    setToken(null);
    if (message) sessionStorage.setItem("billing-portal-message", message);
  };
  if (!token) {
    return <SignIn onToken={(value) => (saveToken(value), setToken(value))} />;
  }
  return (
    <RelayEnvironmentProvider environment={environment}>
      <ErrorBoundary onSignOut={signOut}>
        <Suspense fallback={<main className="muted">Loading…</main>}>
          <Account token={token} onSignOut={() => signOut()} />
        </Suspense>
      </ErrorBoundary>
    </RelayEnvironmentProvider>
  );
}

function SignIn({ onToken }) {
  const [value, setValue] = useState("");
  const message = sessionStorage.getItem("billing-portal-message");
  return (
    <main>
      <section>
        <h1>Sign in</h1>
        <p className="muted">Paste the customer token your account page gave you.</p>
        {message && <p className="error" id="sign-in-error">{message}</p>}
        <form
          id="sign-in-form"
          onSubmit={(event) => {
            event.preventDefault();
            sessionStorage.removeItem("billing-portal-message");
            if (value.trim()) onToken(value.trim());
          }}
        >
          <div className="row">
            <input id="token" size={60} value={value} onChange={(e) => setValue(e.target.value)} />
            <button className="primary" type="submit">Sign in</button>
          </div>
        </form>
      </section>
    </main>
  );
}

class ErrorBoundary extends Component {
  state = { error: null };
  static getDerivedStateFromError(error) {
    return { error };
  }
  render() {
    const { error } = this.state;
    if (!error) return this.props.children;
    if (error.code === "UNAUTHENTICATED" || error.code === "FORBIDDEN") {
      this.props.onSignOut(`${error.message} Sign in again.`);
      return null;
    }
    return (
      <main>
        <p className="error" id="error">{error.message}</p>
        <button onClick={() => this.props.onSignOut()}>Sign out</button>
      </main>
    );
  }
}

function Account({ token, onSignOut }) {
  // Bumped after a change: the queries below refetch (their cached data stays on screen).
  const [version, setVersion] = useState(0);
  const refresh = () => setVersion((v) => v + 1);
  const data = useLazyLoadQuery(
    graphql`
      query PortalQuery {
        customers(first: 1) {
          edges {
            node {
              id
              name
              email
              defaultPaymentMethodId
              subscriptions {
                id
                status
                ...Portal_subscription
              }
            }
          }
        }
        ...PortalInvoices_query
      }
    `,
    {},
    { fetchKey: version, fetchPolicy: "store-and-network" },
  );
  const customer = data.customers.edges[0]?.node;
  if (!customer) throw new Error("This token is not a customer's token.");
  const current = customer.subscriptions.filter((s) => s.status !== "CANCELED" && s.status !== "INCOMPLETE_EXPIRED");
  return (
    <main>
      <header>
        <div>
          <h1 id="customer-name">{customer.name || customer.email}</h1>
          <div className="muted">{customer.email}</div>
        </div>
        <button id="sign-out" onClick={onSignOut}>Sign out</button>
      </header>
      <section id="subscriptions">
        <h2>Subscriptions</h2>
        {current.length === 0 && <p className="muted">No current subscription.</p>}
        {current.map((s) => (
          <SubscriptionCard key={s.id} subscription={s} onChanged={refresh} />
        ))}
      </section>
      <section id="entitlements">
        <h2>What your plan includes</h2>
        <Suspense fallback={<p className="muted">Loading…</p>}>
          <Entitlements customerId={customer.id} version={version} />
        </Suspense>
      </section>
      <section id="payment-method">
        <h2>Payment method</h2>
        {customer.defaultPaymentMethodId ? (
          <p>
            Default card: <code data-field="payment-method">{customer.defaultPaymentMethodId}</code>
          </p>
        ) : (
          <p className="muted" data-field="payment-method">No payment method on file.</p>
        )}
      </section>
      <section id="invoices">
        <h2>Invoices</h2>
        <Invoices query={data} token={token} />
      </section>
    </main>
  );
}

function SubscriptionCard({ subscription, onChanged }) {
  const s = useFragment(
    graphql`
      fragment Portal_subscription on Subscription {
        id
        status
        quantity
        price { amount currency decimal }
        interval
        currentPeriodEnd
        cancelAtPeriodEnd
        trialEnd
        plan { id name tier }
      }
    `,
    subscription,
  );
  const [mode, setMode] = useState(null); // null | "change" | "cancel"
  return (
    <div className="subscription" data-subscription-id={s.id}>
      <div className="row">
        <strong data-field="plan">{s.plan?.name}</strong>
        <span className="pill" data-field="status">{s.status.toLowerCase().replace("_", " ")}</span>
        <span data-field="price">
          {money(s.price)} / {s.interval.toLowerCase()}
        </span>
      </div>
      <div className="muted" data-field="period">
        {s.cancelAtPeriodEnd
          ? `Cancelled: ends on ${day(s.currentPeriodEnd)}`
          : `Renews on ${day(s.currentPeriodEnd)}`}
        {s.trialEnd && s.status === "TRIALING" ? ` · trial until ${day(s.trialEnd)}` : ""}
      </div>
      {!s.cancelAtPeriodEnd && (
        <div className="row">
          <button id="change-plan" onClick={() => setMode(mode === "change" ? null : "change")}>Change plan</button>
          <button id="cancel" className="danger" onClick={() => setMode(mode === "cancel" ? null : "cancel")}>
            Cancel subscription
          </button>
        </div>
      )}
      {mode === "change" && (
        <Suspense fallback={<p className="muted">Loading plans…</p>}>
          <PlanChange subscription={s} onDone={() => (setMode(null), onChanged())} />
        </Suspense>
      )}
      {mode === "cancel" && <Cancel subscription={s} onDone={() => (setMode(null), onChanged())} />}
    </div>
  );
}

function PlanChange({ subscription, onDone }) {
  const { plans } = useLazyLoadQuery(
    graphql`
      query PortalPlansQuery {
        plans(first: 100, filter: { active: true }) {
          edges { node { id name tier interval price { amount currency decimal } } }
        }
      }
    `,
    {},
  );
  const choices = plans.edges
    .map((e) => e.node)
    .filter(
      (p) =>
        p.id !== subscription.plan?.id &&
        p.tier !== "CUSTOM" &&
        p.interval !== "ONE_TIME" &&
        p.price.currency === subscription.price.currency,
    );
  // The preview's idempotency key is made here, once per choice: a suspending child cannot
  // keep one (its state is dropped until it mounts), and new variables would fetch again.
  const [choice, setChoice] = useState(null);
  const planId = choice?.planId ?? "";
  return (
    <div className="preview" id="plan-change">
      <label>
        New plan:{" "}
        <select id="new-plan" value={planId} onChange={(e) => setChoice(e.target.value ? { planId: e.target.value, key: newKey() } : null)}>
          <option value="">Choose…</option>
          {choices.map((p) => (
            <option key={p.id} value={p.id}>
              {p.name} — {money(p.price)} / {p.interval.toLowerCase()}
            </option>
          ))}
        </select>
      </label>
      {choice && (
        <Suspense fallback={<p className="muted">Computing what it costs…</p>}>
          <ChangePreview
            key={choice.key}
            subscription={subscription}
            planId={planId}
            previewKey={choice.key}
            onDone={onDone}
          />
        </Suspense>
      )}
    </div>
  );
}

function ChangePreview({ subscription, planId, previewKey, onDone }) {
  const subscriptionId = subscription.id;
  // The preview runs the change's own code in a transaction that is rolled back: these are
  // the amounts the confirmation will bill.
  const input = { id: subscriptionId, planId, idempotencyKey: previewKey };
  const { subscriptionChangePreview: result } = useLazyLoadQuery(
    graphql`
      query PortalPreviewQuery($input: SubscriptionChangePlanInput!) {
        subscriptionChangePreview(input: $input) {
          preview {
            subscription { status price { amount currency decimal } plan { name } }
            invoice {
              subtotal { amount currency decimal }
              taxTotal { amount currency decimal }
              total { amount currency decimal }
              balanceApplied { amount currency decimal }
              amountDue { amount currency decimal }
              lines { description kind amount { amount currency decimal } }
            }
            creditGranted { amount currency decimal }
            nextInvoice { amountDue { amount currency decimal } }
          }
          errors { field message code }
        }
      }
    `,
    { input },
    { fetchPolicy: "network-only" },
  );
  const [commit, inFlight] = useMutation(graphql`
    mutation PortalChangePlanMutation($input: SubscriptionChangePlanInput!) {
      subscriptionChangePlan(input: $input) {
        subscription { id ...Portal_subscription }
        errors { field message code }
      }
    }
  `);
  const [error, setError] = useState(null);
  if (result.errors.length) {
    return <p className="error" id="preview-error">{result.errors.map((e) => e.message).join(" ")}</p>;
  }
  const { preview } = result;
  const confirm = () =>
    commit({
      variables: { input: { id: subscriptionId, planId, idempotencyKey: newKey() } },
      onCompleted: ({ subscriptionChangePlan: payload }) =>
        payload.errors.length ? setError(payload.errors.map((e) => e.message).join(" ")) : onDone(),
      onError: (e) => setError(e.message),
    });
  return (
    <div id="change-preview">
      <p>
        Switching to <strong data-field="new-plan">{preview.subscription.plan?.name}</strong> at{" "}
        {money(preview.subscription.price)}.
      </p>
      {preview.invoice ? (
        <table>
          <tbody>
            {preview.invoice.lines.map((line, i) => (
              <tr key={i}>
                <td>{line.description}</td>
                <td className="money">{money(line.amount)}</td>
              </tr>
            ))}
            <tr>
              <th>Due now</th>
              <th className="money" data-field="amount-due">{money(preview.invoice.amountDue)}</th>
            </tr>
          </tbody>
        </table>
      ) : (
        <p data-field="amount-due">Nothing to pay now.</p>
      )}
      {preview.creditGranted.amount !== "0" && (
        <p className="muted" data-field="credit">
          {preview.invoice ? "Included above: a" : "A"} credit of {money(preview.creditGranted)} for the
          unused time of your current plan{preview.invoice ? "." : ", on your next invoice."}
        </p>
      )}
      {preview.nextInvoice && (
        <p className="muted" data-field="next-invoice">
          Then {money(preview.nextInvoice.amountDue)} at the renewal on {day(subscription.currentPeriodEnd)}.
        </p>
      )}
      {error && <p className="error">{error}</p>}
      <button id="confirm-change" className="primary" disabled={inFlight} onClick={confirm}>
        Confirm plan change
      </button>
    </div>
  );
}

function Cancel({ subscription, onDone }) {
  const [commit, inFlight] = useMutation(graphql`
    mutation PortalCancelMutation($input: SubscriptionCancelInput!) {
      subscriptionCancel(input: $input) {
        subscription { id ...Portal_subscription }
        errors { field message code }
      }
    }
  `);
  const [error, setError] = useState(null);
  const cancel = () =>
    commit({
      variables: { input: { id: subscription.id, atPeriodEnd: true } },
      onCompleted: ({ subscriptionCancel: payload }) =>
        payload.errors.length ? setError(payload.errors.map((e) => e.message).join(" ")) : onDone(),
      onError: (e) => setError(e.message),
    });
  return (
    <div className="preview" id="cancel-confirm">
      <p>
        Your subscription stays active until {day(subscription.currentPeriodEnd)}, then ends. Nothing more
        is charged.
      </p>
      {error && <p className="error">{error}</p>}
      <button id="confirm-cancel" className="danger" disabled={inFlight} onClick={cancel}>
        Cancel at period end
      </button>
    </div>
  );
}

function Entitlements({ customerId, version }) {
  const { entitlements: e } = useLazyLoadQuery(
    graphql`
      query PortalEntitlementsQuery($customerId: ID!) {
        entitlements(customerId: $customerId) {
          features
          maxUsers
          maxStorageBytes
          credits { subscriptionId remaining { amount currency decimal } included { amount currency decimal } }
          asOf
        }
      }
    `,
    { customerId },
    { fetchKey: version, fetchPolicy: "store-and-network" },
  );
  if (!e) return <p className="muted">Nothing yet.</p>;
  const features = Object.entries(e.features ?? {});
  return (
    <table>
      <tbody>
        {features.map(([name, value]) => (
          <tr key={name} data-feature={name}>
            <td>{name}</td>
            <td>{typeof value === "object" ? JSON.stringify(value) : String(value)}</td>
          </tr>
        ))}
        <tr data-feature="maxUsers">
          <td>Users</td>
          <td>{e.maxUsers ?? "unlimited"}</td>
        </tr>
        <tr data-feature="maxStorageBytes">
          <td>Storage</td>
          <td>{e.maxStorageBytes ? `${(Number(e.maxStorageBytes) / 1e9).toFixed(1)} GB` : "unlimited"}</td>
        </tr>
        {e.credits.map((c) => (
          <tr key={c.subscriptionId} data-feature="credits">
            <td>Credits left</td>
            <td>
              {money(c.remaining)} of {money(c.included)}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Invoices({ query, token }) {
  const { data, hasNext, loadNext, isLoadingNext } = usePaginationFragment(
    graphql`
      fragment PortalInvoices_query on Query
      @refetchable(queryName: "PortalInvoicesPaginationQuery")
      @argumentDefinitions(count: { type: "Int", defaultValue: 10 }, cursor: { type: "String" }) {
        invoices(first: $count, after: $cursor, orderBy: NEWEST_FIRST)
          @connection(key: "PortalInvoices_invoices") {
          edges {
            node {
              id
              number
              status
              createdAt
              total { amount currency decimal }
              amountRemaining { amount currency decimal }
              pdfUrl
            }
          }
        }
      }
    `,
    query,
  );
  const invoices = data.invoices.edges.map((e) => e.node).filter((i) => i.status !== "DRAFT");
  if (invoices.length === 0) return <p className="muted">No invoices yet.</p>;
  return (
    <>
      <table>
        <thead>
          <tr>
            <th>Number</th>
            <th>Date</th>
            <th>Status</th>
            <th className="money">Total</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {invoices.map((invoice) => (
            <tr key={invoice.id} data-invoice-id={invoice.id}>
              <td>{invoice.number}</td>
              <td>{day(invoice.createdAt)}</td>
              <td>
                <span className="pill" data-field="status">{invoice.status.toLowerCase()}</span>
              </td>
              <td className="money" data-field="total">{money(invoice.total)}</td>
              <td>
                <PdfLink token={token} invoice={invoice} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {hasNext && (
        <button id="more-invoices" disabled={isLoadingNext} onClick={() => loadNext(10)}>
          More invoices
        </button>
      )}
    </>
  );
}

function PdfLink({ token, invoice }) {
  // A plain <a href={pdfUrl}> would arrive without the bearer token (401): fetch it with the
  // header, then open the blob.
  const [href, setHref] = useState(null);
  const [error, setError] = useState(null);
  const open = async () => {
    try {
      const url = href ?? (await pdfBlobUrl(token, invoice.pdfUrl));
      setHref(url);
      window.open(url, "_blank", "noopener");
    } catch (e) {
      setError(e.message);
    }
  };
  return (
    <>
      <button className="pdf" onClick={open}>PDF</button>{" "}
      {href && (
        <a className="pdf-link" href={href} download={`${invoice.number ?? invoice.id}.pdf`}>
          save
        </a>
      )}
      {error && <span className="error">{error}</span>}
    </>
  );
}

import { useMutation } from '@apollo/client/react';
import { useId, useState, type FormEvent, type ReactNode } from 'react';
import { graphql } from '../gql';
import { resetForNewSession } from '../graph/client';
import { Link } from '../router';
import { ErrorNotice } from '../ui/notices';
import { sessionFrom, setSession } from './session';

const SIGN_UP = graphql(`
  mutation SignUp($email: String!, $password: String!, $name: String!) {
    signUp(email: $email, password: $password, name: $name) {
      token
      expiresAt
      user { id email name }
    }
  }
`);

const SIGN_IN = graphql(`
  mutation SignIn($email: String!, $password: String!) {
    login(email: $email, password: $password) {
      token
      expiresAt
      user { id email name }
    }
  }
`);

type Payload = { token: string; expiresAt: string; user: { id: string; email: string; name: string } };

async function start(payload: Payload | undefined): Promise<void> {
  if (!payload) return;
  await resetForNewSession();
  setSession(sessionFrom(payload));
}

interface FieldSpec {
  name: string;
  label: string;
  type?: string;
  autoComplete: string;
  minLength?: number;
  hint?: string;
}

/**
 * A sign-up or sign-in form: labelled fields, the graph's error as a sentence,
 * a submit button that says what is happening. Both pages differ only in
 * their fields, their mutation and the link to the other page.
 */
function AuthForm({
  title,
  fields,
  submit,
  loading,
  error,
  other,
}: {
  title: string;
  fields: FieldSpec[];
  submit: (values: Record<string, string>) => Promise<Payload | undefined>;
  loading: boolean;
  error: unknown;
  other: ReactNode;
}) {
  const id = useId();
  const [values, setValues] = useState<Record<string, string>>(() => Object.fromEntries(fields.map((field) => [field.name, ''])));
  const onSubmit = async (event: FormEvent) => {
    event.preventDefault();
    await start(await submit(values).catch(() => undefined));
  };
  return (
    <main id="main" className="auth">
      <h1>{title}</h1>
      <form aria-label={title} onSubmit={onSubmit}>
        {fields.map((field) => (
          <div className="field" key={field.name}>
            <label htmlFor={`${id}-${field.name}`}>{field.label}</label>
            <input
              id={`${id}-${field.name}`}
              name={field.name}
              type={field.type ?? 'text'}
              autoComplete={field.autoComplete}
              minLength={field.minLength}
              required
              value={values[field.name]}
              onChange={(event) => setValues({ ...values, [field.name]: event.target.value })}
              aria-describedby={field.hint ? `${id}-${field.name}-hint` : undefined}
            />
            {field.hint && (
              <p id={`${id}-${field.name}-hint`} className="hint">
                {field.hint}
              </p>
            )}
          </div>
        ))}
        <ErrorNotice error={error} />
        <button type="submit" disabled={loading}>
          {loading ? `${title}…` : title}
        </button>
      </form>
      <p>{other}</p>
    </main>
  );
}

export function SignUpPage() {
  const [signUp, { loading, error }] = useMutation(SIGN_UP);
  return (
    <AuthForm
      title="Sign up"
      fields={[
        { name: 'name', label: 'Name', autoComplete: 'name' },
        { name: 'email', label: 'E-mail', type: 'email', autoComplete: 'email' },
        { name: 'password', label: 'Password', type: 'password', autoComplete: 'new-password', minLength: 8, hint: 'At least 8 characters.' },
      ]}
      submit={async ({ name, email, password }) => (await signUp({ variables: { name, email, password } })).data?.signUp}
      loading={loading}
      error={error}
      other={
        <>
          Already have an account? <Link to="/sign-in">Sign in</Link>
        </>
      }
    />
  );
}

export function SignInPage() {
  const [signIn, { loading, error }] = useMutation(SIGN_IN);
  return (
    <AuthForm
      title="Sign in"
      fields={[
        { name: 'email', label: 'E-mail', type: 'email', autoComplete: 'email' },
        { name: 'password', label: 'Password', type: 'password', autoComplete: 'current-password' },
      ]}
      submit={async ({ email, password }) => (await signIn({ variables: { email, password } })).data?.login}
      loading={loading}
      error={error}
      other={
        <>
          New to Sluice? <Link to="/sign-up">Sign up</Link>
        </>
      }
    />
  );
}

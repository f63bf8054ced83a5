"""Build the TLS context for Kafka clients from the CA/cert/key files in the settings."""

from __future__ import annotations

import ssl
from pathlib import Path

from coffeebuddy.infra.kafka.config._errors import SettingProblem


def _key_is_encrypted(path: Path) -> bool:
    try:
        head = path.read_bytes()[:4096]
    except OSError:
        return False
    return b"ENCRYPTED" in head


def build_ssl_context(
    *,
    cafile: Path | None,
    certfile: Path | None,
    keyfile: Path | None,
    key_password: str | None,
    check_hostname: bool,
) -> tuple[ssl.SSLContext | None, list[SettingProblem]]:
    """Return a client TLS context (or None) and the problems met loading the files.

    Certificates are always verified; only the hostname check can be turned off.
    Without a CA file the system trust store is used; with one, only that CA is trusted.
    """
    problems: list[SettingProblem] = []
    if cafile is None:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    else:
        # Like a Kafka truststore: the CA file replaces the system trust store.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        try:
            context.load_verify_locations(cafile=str(cafile))
        except (ssl.SSLError, OSError, ValueError) as exc:
            problems.append(
                SettingProblem(
                    "KAFKA_SSL_CAFILE",
                    f"{cafile} holds no usable PEM CA certificate ({_reason(exc)})",
                )
            )
    if certfile is not None:
        # A callable password stops OpenSSL from prompting on the terminal for an encrypted key.
        secret = (key_password or "").encode()
        try:
            context.load_cert_chain(
                certfile=str(certfile),
                keyfile=str(keyfile) if keyfile is not None else None,
                password=lambda: secret,
            )
        except (ssl.SSLError, OSError, ValueError) as exc:
            key_path = keyfile if keyfile is not None else certfile
            if _key_is_encrypted(key_path):
                if key_password is None:
                    problems.append(
                        SettingProblem(
                            "KAFKA_SSL_KEY_PASSWORD",
                            f"the private key in {key_path} is encrypted; set the password",
                        )
                    )
                else:
                    problems.append(
                        SettingProblem(
                            "KAFKA_SSL_KEY_PASSWORD",
                            f"does not decrypt the private key in {key_path} ({_reason(exc)})",
                        )
                    )
            else:
                where = f"{certfile}" + (f" and {keyfile}" if keyfile is not None else "")
                variable = "KAFKA_SSL_CERTFILE" if keyfile is None else "KAFKA_SSL_KEYFILE"
                problems.append(
                    SettingProblem(
                        variable,
                        f"cannot load the client certificate and key from {where} "
                        f"({_reason(exc)}); they must be PEM files and the key must match "
                        "the certificate",
                    )
                )
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = check_hostname
    context.verify_mode = ssl.CERT_REQUIRED
    if problems:
        return None, problems
    return context, problems


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    return str(exc) or type(exc).__name__

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "k8s/kubelet.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#define TOKEN_MAX 16384

struct kubelet {
	struct kubelet_opts o;
	char *pods_url;
	char *token_file, *ca_file;
	CURL *easy; /* reused: keeps the TLS session and connection */
};

struct body {
	char *buf;
	size_t len, cap, max;
	bool too_big;
};

/* Whether the last transfer's socket was reset or closed under it. */
static bool dropped(CURL *easy)
{
	long e = 0;

	return curl_easy_getinfo(easy, CURLINFO_OS_ERRNO, &e) == CURLE_OK &&
	       (e == ECONNRESET || e == EPIPE);
}

struct kubelet *kubelet__new(const struct kubelet_opts *o)
{
	struct kubelet *k;
	size_t n;

	if (!o || o->sz < sizeof(*o) || !o->url || !o->url[0] || o->timeout_ms < 0) {
		errno = EINVAL;
		return NULL;
	}
	/* Reference counted: each kubelet__free balances it. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
		errno = ENOMEM;
		return NULL;
	}
	k = calloc(1, sizeof(*k));
	if (!k) {
		curl_global_cleanup();
		errno = ENOMEM;
		return NULL;
	}
	k->o = *o;
	if (!k->o.timeout_ms)
		k->o.timeout_ms = 10000;
	if (!k->o.max_body)
		k->o.max_body = KUBELET_DEFAULT_MAX_BODY;
	n = strlen(o->url);
	k->pods_url = malloc(n + 6);
	k->token_file = o->token_file ? strdup(o->token_file) : NULL;
	k->ca_file = o->ca_file ? strdup(o->ca_file) : NULL;
	k->easy = curl_easy_init();
	if (!k->pods_url || (o->token_file && !k->token_file) || (o->ca_file && !k->ca_file) ||
	    !k->easy) {
		kubelet__free(k);
		errno = ENOMEM;
		return NULL;
	}
	/* "https://host:10250" or ".../" -> ".../pods" */
	snprintf(k->pods_url, n + 6, "%s%s", o->url, n && o->url[n - 1] == '/' ? "pods" : "/pods");
	return k;
}

void kubelet__free(struct kubelet *k)
{
	if (!k)
		return;
	if (k->easy)
		curl_easy_cleanup(k->easy);
	free(k->pods_url);
	free(k->token_file);
	free(k->ca_file);
	free(k);
	curl_global_cleanup();
}

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
	struct body *b = ud;
	size_t add = size * n, nc;
	char *nb;

	if (b->len + add > b->max) {
		b->too_big = true;
		return 0; /* aborts the transfer */
	}
	if (b->len + add + 1 > b->cap) {
		nc = b->cap ? b->cap : 65536;
		while (nc < b->len + add + 1)
			nc *= 2;
		if (nc > b->max + 1)
			nc = b->max + 1;
		nb = realloc(b->buf, nc);
		if (!nb)
			return 0;
		b->buf = nb;
		b->cap = nc;
	}
	memcpy(b->buf + b->len, p, add);
	b->len += add;
	b->buf[b->len] = '\0';
	return add;
}

static int read_token(const char *path, char *out, size_t cap, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	size_t n;

	int e;

	if (!f) {
		e = errno;
		snprintf(err, errlen, "cannot read the token file %s: %s (--kubelet-token-file)",
			 path, strerror(e));
		return -e;
	}
	n = fread(out, 1, cap - 1, f);
	e = ferror(f) ? errno : 0;
	fclose(f);
	if (e) {
		snprintf(err, errlen, "cannot read the token file %s: %s (--kubelet-token-file)",
			 path, strerror(e));
		return -e;
	}
	if (n == cap - 1) {
		snprintf(err, errlen, "token file %s is larger than %zu bytes; not a token", path,
			 cap - 2);
		return -E2BIG;
	}
	while (n && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' '))
		n--;
	out[n] = '\0';
	if (!n || strpbrk(out, "\r\n")) {
		snprintf(err, errlen, "token file %s is empty or not a single token", path);
		return -EINVAL;
	}
	return 0;
}

int kubelet__get_pods(struct kubelet *k, char **body_out, size_t *len, long *status, char *err,
		      size_t errlen)
{
	struct body b = { .max = k->o.max_body };
	struct curl_slist *hdrs = NULL;
	char errbuf[CURL_ERROR_SIZE] = "";
	char *auth = NULL;
	CURLcode cc;
	int ret = 0;

	*status = 0;
	*body_out = NULL;
	if (k->token_file) {
		char *tok = malloc(TOKEN_MAX);
		if (!tok)
			return -ENOMEM;
		ret = read_token(k->token_file, tok, TOKEN_MAX, err, errlen);
		if (!ret) {
			size_t n = strlen(tok) + 32;
			auth = malloc(n);
			if (auth)
				snprintf(auth, n, "Authorization: Bearer %s", tok);
		}
		/* Do not leave the token in freed memory (memset could be elided). */
		explicit_bzero(tok, TOKEN_MAX);
		free(tok);
		if (ret)
			return ret;
		if (!auth)
			return -ENOMEM;
		hdrs = curl_slist_append(NULL, auth);
		explicit_bzero(auth, strlen(auth));
		free(auth);
		if (!hdrs)
			return -ENOMEM;
	}
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	curl_easy_reset(k->easy);
	if (curl_easy_setopt(k->easy, CURLOPT_URL, k->pods_url) != CURLE_OK ||
	    curl_easy_setopt(k->easy, CURLOPT_HTTPHEADER, hdrs) != CURLE_OK ||
	    curl_easy_setopt(k->easy, CURLOPT_WRITEFUNCTION, on_data) != CURLE_OK ||
	    curl_easy_setopt(k->easy, CURLOPT_WRITEDATA, &b) != CURLE_OK ||
	    curl_easy_setopt(k->easy, CURLOPT_ERRORBUFFER, errbuf) != CURLE_OK ||
	    curl_easy_setopt(k->easy, CURLOPT_TIMEOUT_MS, k->o.timeout_ms) != CURLE_OK ||
	    curl_easy_setopt(k->easy, CURLOPT_CONNECTTIMEOUT_MS, 5000L) != CURLE_OK ||
	    curl_easy_setopt(k->easy, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(k->easy, CURLOPT_ACCEPT_ENCODING, "") != CURLE_OK ||
	    curl_easy_setopt(k->easy, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
	    curl_easy_setopt(k->easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)k->o.max_body) !=
		    CURLE_OK ||
	    curl_easy_setopt(k->easy, CURLOPT_SSL_VERIFYPEER, k->o.insecure ? 0L : 1L) != CURLE_OK ||
	    curl_easy_setopt(k->easy, CURLOPT_SSL_VERIFYHOST, k->o.insecure ? 0L : 2L) != CURLE_OK ||
	    (k->ca_file && !k->o.insecure &&
	     curl_easy_setopt(k->easy, CURLOPT_CAINFO, k->ca_file) != CURLE_OK)) {
		snprintf(err, errlen, "cannot configure the HTTP client");
		ret = -EINVAL;
		goto out;
	}
	cc = curl_easy_perform(k->easy);
	curl_easy_getinfo(k->easy, CURLINFO_RESPONSE_CODE, status);
	if (b.too_big || cc == CURLE_FILESIZE_EXCEEDED) {
		snprintf(err, errlen, "GET %s: response larger than %zu bytes; refusing it",
			 k->pods_url, k->o.max_body);
		ret = -E2BIG;
	} else if (cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CACERT_BADFILE ||
		   cc == CURLE_SSL_CERTPROBLEM) {
		snprintf(err, errlen,
			 "GET %s: TLS verification failed (%s). Kubelet serving certificates are "
			 "often not signed by the cluster CA: give their CA with "
			 "--kubelet-ca-file, or opt in to --kubelet-insecure-skip-tls-verify",
			 k->pods_url, errbuf[0] ? errbuf : curl_easy_strerror(cc));
		ret = -EPROTO;
	} else if (cc == CURLE_OPERATION_TIMEDOUT) {
		snprintf(err, errlen, "GET %s: no answer within %ld ms", k->pods_url,
			 k->o.timeout_ms);
		ret = -ETIMEDOUT;
	} else if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ||
		   (cc == CURLE_SSL_CONNECT_ERROR && dropped(k->easy))) {
		/* A reset or close before the handshake was done is a kubelet
		 * going away (a restart closes its listener under connections not
		 * yet accepted), not a wrong port: the same state as the refusal
		 * that usually follows, so one line says it. */
		snprintf(err, errlen, "GET %s: cannot connect (%s%s); is the kubelet running and "
			 "--kubelet-url right?", k->pods_url,
			 cc == CURLE_SSL_CONNECT_ERROR ? "the connection was dropped during the "
							 "TLS handshake: " : "",
			 errbuf[0] ? errbuf : curl_easy_strerror(cc));
		ret = cc == CURLE_COULDNT_RESOLVE_HOST ? -EHOSTUNREACH : -ECONNREFUSED;
	} else if (cc == CURLE_SSL_CONNECT_ERROR) {
		/* Not a verdict on the certificate: the handshake itself failed. */
		snprintf(err, errlen, "GET %s: TLS handshake failed (%s); is --kubelet-url the "
			 "kubelet's HTTPS port?", k->pods_url,
			 errbuf[0] ? errbuf : curl_easy_strerror(cc));
		ret = -EPROTO;
	} else if (cc != CURLE_OK) {
		snprintf(err, errlen, "GET %s: %s", k->pods_url,
			 errbuf[0] ? errbuf : curl_easy_strerror(cc));
		ret = -EIO;
	} else if (*status == 403) {
		/* Authenticated but not authorized: RBAC. Kubelets before 1.33 (no
		 * KubeletFineGrainedAuthz) authorize /pods only as nodes/proxy. */
		snprintf(err, errlen,
			 "GET %s: HTTP 403: the kubelet denied the service account; it needs RBAC "
			 "get on nodes/pods (kubelets >= 1.33) or, on older kubelets, nodes/proxy "
			 "(Helm chart value rbac.nodesProxy=true: exec-equivalent on the node)",
			 k->pods_url);
		ret = -EACCES;
	} else if (*status == 401) {
		snprintf(err, errlen,
			 "GET %s: HTTP %ld: the kubelet rejected the service-account token; it "
			 "needs RBAC get on nodes/pods (and nodes/proxy on older kubelets)",
			 k->pods_url, *status);
		ret = -EACCES;
	} else if (*status != 200) {
		snprintf(err, errlen, "GET %s: HTTP %ld", k->pods_url, *status);
		ret = -EIO;
	}
out:
	curl_slist_free_all(hdrs);
	if (ret) {
		free(b.buf);
		return ret;
	}
	if (!b.buf) {
		b.buf = calloc(1, 1);
		if (!b.buf)
			return -ENOMEM;
	}
	*body_out = b.buf;
	*len = b.len;
	return 0;
}

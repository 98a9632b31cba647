/*
 * Corpus replay for the fuzz targets: a plain main() that feeds every file
 * named on the command line (directories are walked one level) to
 * LLVMFuzzerTestOneInput, so `make check` replays each corpus under ASan
 * and UBSan without needing libFuzzer. Prints TAP: one test per file.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_count;

static int replay_file(const char *path)
{
	FILE *fp = fopen(path, "rb");
	if (fp == NULL) {
		printf("not ok %d - %s: cannot open\n", ++replay_count, path);
		return 1;
	}
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0;
	for (;;) {
		if (len == cap) {
			cap = cap ? cap * 2 : 4096;
			uint8_t *n = realloc(buf, cap);
			if (n == NULL) {
				free(buf);
				fclose(fp);
				return 1;
			}
			buf = n;
		}
		size_t got = fread(buf + len, 1, cap - len, fp);
		if (got == 0)
			break;
		len += got;
	}
	fclose(fp);
	/* A crash, a sanitizer report or a leak ends the process: the TAP
	 * runner then counts the program as failed. */
	LLVMFuzzerTestOneInput(buf, len);
	free(buf);
	printf("ok %d - %s (%zu bytes)\n", ++replay_count, path, len);
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int main(int argc, char **argv)
{
	char **files = NULL;
	size_t n = 0, cap = 0;
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) != 0)
			continue;
		DIR *d = S_ISDIR(st.st_mode) ? opendir(argv[i]) : NULL;
		struct dirent *e;
		while (d != NULL && (e = readdir(d)) != NULL) {
			if (e->d_name[0] == '.')
				continue;
			if (n == cap) {
				cap = cap ? cap * 2 : 64;
				files = realloc(files, cap * sizeof *files);
				if (files == NULL)
					return 1;
			}
			size_t l = strlen(argv[i]) + strlen(e->d_name) + 2;
			files[n] = malloc(l);
			if (files[n] == NULL)
				return 1;
			snprintf(files[n], l, "%s/%s", argv[i], e->d_name);
			n++;
		}
		if (d != NULL)
			closedir(d);
		else if (S_ISREG(st.st_mode)) {
			if (n == cap) {
				cap = cap ? cap * 2 : 64;
				files = realloc(files, cap * sizeof *files);
				if (files == NULL)
					return 1;
			}
			files[n++] = strdup(argv[i]);
		}
	}
	qsort(files, n, sizeof *files, cmp_str);
	printf("1..%zu\n", n ? n : 1);
	int failed = 0;
	if (n == 0) {
		printf("not ok 1 - empty corpus\n");
		failed = 1;
	}
	for (size_t i = 0; i < n; i++) {
		failed |= replay_file(files[i]);
		free(files[i]);
	}
	free(files);
	return failed;
}

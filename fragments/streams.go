package fragments

import (
	"time"
)

// NewStream is what CreateStream takes.
type NewStream struct {
	Name, DeviceName, MediaType, KmsKeyID string
	RetentionHours                        int
	Tags                                  map[string]string
}

// CreateStream creates an ACTIVE stream. ErrStreamExists if the name is taken.
func (s *Store) CreateStream(n NewStream) (*Stream, error) {
	now := time.Now()
	st := &Stream{
		Name: n.Name, DeviceName: n.DeviceName, MediaType: n.MediaType, KmsKeyID: n.KmsKeyID,
		RetentionHours: n.RetentionHours, Tags: n.Tags,
		ARN: s.StreamARN(n.Name, now), Version: newVersion(), Status: "ACTIVE", CreationTime: now,
	}
	if st.KmsKeyID == "" {
		st.KmsKeyID = "arn:aws:kms:" + s.cfg.Region + ":" + s.cfg.Account + ":alias/aws/kinesisvideo"
	}
	if st.Tags == nil {
		st.Tags = map[string]string{}
	}
	if err := s.Index.CreateStream(st); err != nil {
		return nil, err
	}
	return st, nil
}

// Stream finds a stream by name or ARN. With both, they must name the same
// stream. ErrNotFound otherwise.
func (s *Store) Stream(name, arn string) (*Stream, error) {
	st, err := s.Index.Stream(name, arn)
	if err != nil {
		return nil, err
	}
	if name != "" && arn != "" && st.ARN != arn {
		return nil, ErrNotFound
	}
	return st, nil
}

// UpdateStream applies change to a stream if currentVersion matches (or is
// ""), and gives it a new version. ErrVersion on a mismatch.
func (s *Store) UpdateStream(st *Stream, currentVersion string, change func(*Stream)) (*Stream, error) {
	if currentVersion != "" && currentVersion != st.Version {
		return nil, ErrVersion
	}
	old := st.Version
	next := *st
	next.Tags = make(map[string]string, len(st.Tags))
	for k, v := range st.Tags {
		next.Tags[k] = v
	}
	change(&next)
	next.Version = newVersion()
	if err := s.Index.UpdateStream(&next, old); err != nil {
		return nil, err
	}
	return &next, nil
}

// DeleteStream deletes a stream, its index and its payloads. A PutMedia in
// progress on it ends with error 4008 at its next fragment.
func (s *Store) DeleteStream(st *Stream, currentVersion string) error {
	if currentVersion != "" && currentVersion != st.Version {
		return ErrVersion
	}
	if err := s.Index.DeleteStream(st.ID); err != nil {
		return err
	}
	s.mu.Lock()
	if p := s.putters[st.ID]; p != nil {
		p.deleted.Store(true)
	}
	s.mu.Unlock()
	return s.Payloads.RemoveStream(st.ID)
}

func (s *Store) retentionLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.RetentionInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if err := s.ExpireNow(time.Now()); err != nil {
				s.log.Error("retention", "err", err)
			}
		}
	}
}

// ExpireNow deletes every fragment older than its stream's retention at now,
// and the payload segments left empty.
func (s *Store) ExpireNow(now time.Time) error {
	streams, err := s.Index.AllStreams()
	if err != nil {
		return err
	}
	for _, st := range streams {
		if !st.Archived() {
			continue
		}
		segs, err := s.Index.Expire(st.ID, st.Cutoff(now))
		if err != nil {
			return err
		}
		for _, id := range segs {
			s.mu.Lock()
			busy := s.open[id]
			s.mu.Unlock()
			if busy {
				continue
			}
			if err := s.Payloads.Remove(st.ID, id); err != nil {
				return err
			}
			if err := s.Index.DropSegment(id); err != nil {
				return err
			}
		}
	}
	return nil
}
